"""``TermCounts`` and ``TermCountIndex``: the raw-count bookkeeping BM25 and TF-IDF share, and its file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lorag.retrieval import BM25Index, IndexFormatError, TfidfIndex, persistence
from lorag.retrieval.documents import DocumentStore
from lorag.retrieval.term_counts import TermCountIndex, TermCounts, top_rows
from tests.retrieval.retrieval_data import WhitespaceTokenizer

DOCS = [["a", "b", "a"], ["c"], [], ["b", "d", "d", "d"]]


def _counts(docs: list[list[str]]) -> TermCounts:
    counts = TermCounts()
    counts.add(docs)
    return counts


def test_add_numbers_terms_in_first_seen_order_and_counts_repeats() -> None:
    counts = _counts(DOCS)
    assert counts.vocab == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert counts.n_docs == 4
    np.testing.assert_array_equal(counts.matrix().toarray(), [[2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 3]])
    np.testing.assert_array_equal(counts.lengths, [3, 1, 0, 4])
    assert (counts.indptr.dtype, counts.terms.dtype, counts.tfs.dtype, counts.lengths.dtype) == (
        np.int64,
        np.int32,
        np.int32,
        np.int64,
    )


def test_add_appends_rows_and_extends_the_vocabulary() -> None:
    counts = _counts(DOCS[:2])
    counts.add(DOCS[2:])
    fresh = _counts(DOCS)
    assert counts.vocab == fresh.vocab
    for name in ("indptr", "terms", "tfs", "lengths"):
        np.testing.assert_array_equal(getattr(counts, name), getattr(fresh, name))


def test_add_changes_nothing_when_a_document_fails_half_way() -> None:
    counts = _counts(DOCS[:2])

    def documents() -> object:
        yield ["new", "a"]
        raise RuntimeError("tokenizer failed")

    with pytest.raises(RuntimeError, match="tokenizer failed"):
        counts.add(documents())  # type: ignore[arg-type]
    assert counts.vocab == {"a": 0, "b": 1, "c": 2}
    assert counts.n_docs == 2


def test_keep_rows_drops_unused_terms_and_keeps_the_others_order() -> None:
    counts = _counts(DOCS)
    counts.keep_rows(np.array([False, True, True, True]))
    assert counts.vocab == {"b": 0, "c": 1, "d": 2}  # a fresh build has the same terms, numbered as first seen
    fresh = _counts(DOCS[1:])
    order = [fresh.vocab[t] for t in counts.vocab]
    np.testing.assert_array_equal(counts.matrix().toarray(), fresh.matrix().toarray()[:, order])
    np.testing.assert_array_equal(counts.lengths, fresh.lengths)


def test_keep_no_rows_leaves_an_empty_vocabulary() -> None:
    counts = _counts(DOCS)
    counts.keep_rows(np.zeros(4, dtype=bool))
    assert counts.vocab == {}
    assert counts.n_docs == 0
    assert counts.matrix().shape == (0, 0)


@pytest.mark.parametrize("lengths", [True, False])
def test_save_and_load_round_trip(tmp_path: Path, lengths: bool) -> None:
    counts = _counts(DOCS)
    counts.save(tmp_path, lengths=lengths)
    with np.load(tmp_path / "counts.npz", allow_pickle=False) as data:
        expected = ["doc_indptr", "doc_terms", "doc_tfs"] + (["doc_len"] if lengths else [])
        assert data.files == expected
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == ["a", "b", "c", "d"]
    loaded = TermCounts.load(tmp_path, lengths=lengths)
    loaded.check(4, tmp_path)
    assert loaded.vocab == counts.vocab
    for name in ("indptr", "terms", "tfs", "lengths"):  # without doc_len, lengths are each row's count sum
        np.testing.assert_array_equal(getattr(loaded, name), getattr(counts, name))


def test_load_names_a_missing_array(tmp_path: Path) -> None:
    _counts(DOCS).save(tmp_path, lengths=False)
    with pytest.raises(IndexFormatError, match="lacks array 'doc_len'"):
        TermCounts.load(tmp_path, lengths=True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: setattr(c, "terms", np.append(c.terms, np.int32(0))),  # indptr does not cover every non-zero
        lambda c: setattr(c, "terms", np.where(c.terms == 3, 9, c.terms).astype(np.int32)),  # unknown term
        lambda c: setattr(c, "indptr", c.indptr[[0, 2, 1, 3, 4]]),  # rows going backwards
        lambda c: setattr(c, "lengths", c.lengths[:-1]),  # a length missing
    ],
)
def test_check_refuses_inconsistent_counts(damage: object) -> None:
    counts = _counts(DOCS)
    counts.check(4, Path("here"))
    damage(counts)  # type: ignore[operator]
    with pytest.raises(IndexFormatError, match="inconsistent"):
        counts.check(4, Path("here"))


def test_check_refuses_another_number_of_documents() -> None:
    with pytest.raises(IndexFormatError, match="inconsistent"):
        _counts(DOCS).check(5, Path("here"))


def test_top_rows_best_first_ties_by_row_and_mask() -> None:
    summed = np.array([1.0, 3.0, 2.0, 3.0, 0.5])
    rows, scores = top_rows(summed, np.arange(5), 3, None)
    np.testing.assert_array_equal(rows, [1, 3, 2])
    np.testing.assert_array_equal(scores, [3.0, 3.0, 2.0])
    mask = np.array([True, False, True, True, True])
    rows, _ = top_rows(summed, np.arange(5), 10, mask)
    np.testing.assert_array_equal(rows, [3, 2, 0, 4])
    assert rows.dtype == np.int64


@pytest.mark.parametrize("cls", [BM25Index, TfidfIndex])
def test_both_sparse_indexes_share_the_base(cls: type[TermCountIndex]) -> None:
    assert issubclass(cls, TermCountIndex)
    index = cls.from_texts(["a b", "b c"], ids=["x", "y"], tokenizer=WhitespaceTokenizer())
    assert index.vocab is index.counts.vocab
    assert set(index.settings()) == {*cls.SETTINGS, "tokenizer"}
    index.delete(["x"])
    assert index.vocab == {"b": 0, "c": 1}
    assert len(index) == 1


@pytest.mark.parametrize(("cls", "lengths"), [(BM25Index, True), (TfidfIndex, False)])
def test_loads_files_written_by_hand_in_the_saved_format(
    tmp_path: Path, cls: type[TermCountIndex], lengths: bool
) -> None:
    """The directory layout as lorag wrote it before ``TermCounts`` existed: counts.npz, vocab.json, documents.json."""
    texts = ["a b a", "c", "b d d d"]
    arrays = {
        "doc_indptr": np.array([0, 2, 3, 5], dtype=np.int64),
        "doc_terms": np.array([0, 1, 2, 1, 3], dtype=np.int32),
        "doc_tfs": np.array([2, 1, 1, 1, 3], dtype=np.int32),
    }
    if lengths:
        arrays["doc_len"] = np.array([3, 1, 4], dtype=np.int64)
    np.savez(tmp_path / "counts.npz", **arrays)  # type: ignore[arg-type]
    (tmp_path / "vocab.json").write_text(json.dumps(["a", "b", "c", "d"]), encoding="utf-8")
    docs = DocumentStore()
    docs.add(["x", "y", "z"], texts, [{}, {}, {}])
    (tmp_path / "documents.json").write_text(json.dumps(docs.to_json()), encoding="utf-8")
    built = cls.from_texts(texts, ids=["x", "y", "z"], tokenizer=WhitespaceTokenizer())
    persistence.write_manifest(tmp_path, cls.KIND, built.settings())
    loaded = cls.read_from(tmp_path, WhitespaceTokenizer())
    assert loaded.vocab == built.vocab
    for query in (["a"], ["b", "d"], ["c", "c", "a"]):
        np.testing.assert_array_equal(loaded.scores_for_tokens(query), built.scores_for_tokens(query))

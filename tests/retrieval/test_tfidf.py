"""``TfidfIndex``: scores equal scikit-learn's ``TfidfVectorizer`` on the same tokens, filters, add/delete, save/load
(alone and as the hybrid's sparse side) and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from lorag.retrieval import (
    BM25Index,
    HybridRetriever,
    IndexFormatError,
    SettingsMismatchError,
    TfidfIndex,
    Tokenizer,
    persistence,
)
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS, WhitespaceTokenizer

OPTIONS = [(sublinear, smooth) for sublinear in (False, True) for smooth in (False, True)]
WORDS = st.sampled_from([f"w{i}" for i in range(8)])
DOC = st.lists(WORDS, min_size=0, max_size=10).map(" ".join)
QUERIES = ["fox and dog", "capital city of France", "programming language", "museum in Paris"]


def sklearn_scores(corpus: list[str], queries: list[str], sublinear: bool, smooth: bool) -> np.ndarray:
    """The oracle: cosine of scikit-learn's TF-IDF vectors on whitespace tokens, queries x documents."""
    vectorizer = TfidfVectorizer(analyzer=str.split, sublinear_tf=sublinear, smooth_idf=smooth)
    matrix = vectorizer.fit_transform(corpus)
    return (vectorizer.transform(queries) @ matrix.T).toarray()


@pytest.mark.parametrize(("sublinear", "smooth"), OPTIONS)
@settings(max_examples=40, deadline=None)
@given(docs=st.lists(DOC, min_size=1, max_size=12), queries=st.lists(DOC, min_size=1, max_size=4))
def test_scores_equal_scikit_learn(sublinear: bool, smooth: bool, docs: list[str], queries: list[str]) -> None:
    assume(any(d for d in docs))  # scikit-learn refuses a corpus without a single token
    index = TfidfIndex.from_texts(docs, sublinear_tf=sublinear, smooth_idf=smooth, tokenizer=WhitespaceTokenizer())
    expected = sklearn_scores(docs, queries, sublinear, smooth)
    for q, row in zip(queries, expected, strict=True):
        got = index.scores_for_tokens(q.split())
        np.testing.assert_allclose(got, row, rtol=1e-12, atol=1e-15)
        if q.strip():
            hits = index.search(q, k=len(docs))
            assert [h.id for h in hits] == [str(r) for r in np.lexsort((np.arange(len(docs)), -got)) if got[r] > 0]
            np.testing.assert_allclose([h.score for h in hits], sorted(row[row > 0], reverse=True), rtol=1e-12)


@pytest.mark.parametrize(("sublinear", "smooth"), OPTIONS)
@settings(max_examples=25, deadline=None)
@given(
    first=st.lists(DOC, min_size=1, max_size=8),
    second=st.lists(DOC, min_size=1, max_size=8),
    drop=st.sets(st.integers(0, 15), max_size=6),
    queries=st.lists(DOC, min_size=1, max_size=3),
)
def test_add_and_delete_score_like_a_fresh_fit(
    sublinear: bool, smooth: bool, first: list[str], second: list[str], drop: set[int], queries: list[str]
) -> None:
    docs = first + second
    dropped = sorted(i for i in drop if i < len(docs))
    kept = [d for i, d in enumerate(docs) if i not in dropped]
    assume(len(kept) > 0 and any(kept))
    index = TfidfIndex.from_texts(first, sublinear_tf=sublinear, smooth_idf=smooth, tokenizer=WhitespaceTokenizer())
    index.add(second)
    if dropped:
        index.delete([str(i) for i in dropped])
    assert index.docs.ids == [str(i) for i in range(len(docs)) if i not in dropped]
    assert len(index.vocab) == len({w for d in kept for w in d.split()})  # unused terms leave the vocabulary
    for q, row in zip(queries, sklearn_scores(kept, queries, sublinear, smooth), strict=True):
        np.testing.assert_allclose(index.scores_for_tokens(q.split()), row, rtol=1e-12, atol=1e-15)


def test_default_tokenizer_is_bm25s_and_scores_equal_scikit_learn_on_its_tokens() -> None:
    index = TfidfIndex.from_texts(CORPUS, ids=IDS)
    assert index.tokenizer.settings() == BM25Index().tokenizer.settings()
    vectorizer = TfidfVectorizer(analyzer=Tokenizer().tokenize)
    matrix = vectorizer.fit_transform(CORPUS)
    expected = (vectorizer.transform(QUERIES) @ matrix.T).toarray()
    for q, row in zip(QUERIES, expected, strict=True):
        np.testing.assert_allclose(index.get_scores(q), row, rtol=1e-12, atol=1e-15)
    assert index.search("foxes hunting", k=1)[0].id in {"doc-0", "doc-1", "doc-9"}  # stemmed: fox, hunt


def test_search_edges_k_zero_k_over_n_and_no_shared_term() -> None:
    index = TfidfIndex.from_texts(CORPUS, ids=IDS)
    assert index.search("Paris", k=0) == []
    hits = index.search("Paris", k=100)
    assert {h.id for h in hits} == {"doc-2", "doc-5", "doc-8"} and [h.rank for h in hits] == [1, 2, 3]
    assert index.search("zebra quantum", k=5) == []
    assert index.search_batch(["Paris", "zebra"], k=2) == [index.search("Paris", k=2), []]


def test_filter_applies_before_the_cut_and_keeps_scores() -> None:
    index = TfidfIndex.from_texts(CORPUS, ids=IDS, metadatas=METADATAS)
    unfiltered = {h.id: h.score for h in index.search("Paris capital city", k=10)}
    hits = index.search("Paris capital city", k=2, filter={"year": {"$gte": 2004}, "topic": "geography"})
    assert [h.id for h in hits] and all(h.metadata["topic"] == "geography" and h.metadata["year"] >= 2004 for h in hits)
    assert "doc-2" not in {h.id for h in hits}  # a better, filtered-out document does not take a slot
    assert len(hits) == 2 and all(unfiltered[h.id] == h.score for h in hits)
    assert index.search("Paris", k=5, filter={"topic": "animals"}) == []


def test_score_documents_and_ranking_give_exact_scores_for_any_id() -> None:
    index = TfidfIndex.from_texts(CORPUS, ids=IDS)
    scores = index.get_scores("Paris museum")
    top, exact = index.ranking("Paris museum", 1, exact_for=["doc-2", "doc-3", "unknown"])
    assert list(top) == ["doc-8"] and top["doc-8"] == pytest.approx(scores[8])
    assert exact == {"doc-2": scores[2], "doc-3": 0.0}
    assert index.score_documents("Paris museum", ["doc-5"]) == {"doc-5": scores[5]}


@pytest.mark.parametrize(("sublinear", "smooth"), OPTIONS)
def test_save_load_identical(tmp_path: Path, sublinear: bool, smooth: bool) -> None:
    index = TfidfIndex.from_texts(CORPUS, ids=IDS, metadatas=METADATAS, sublinear_tf=sublinear, smooth_idf=smooth)
    index.delete(["doc-4"])
    index.save(tmp_path / "idx")
    loaded = TfidfIndex.load(tmp_path / "idx")
    assert loaded.settings() == index.settings()
    for q in QUERIES:
        assert loaded.search(q, k=5) == index.search(q, k=5)
        geography = {"topic": "geography"}
        assert loaded.search(q, k=5, filter=geography) == index.search(q, k=5, filter=geography)
        np.testing.assert_array_equal(loaded.get_scores(q), index.get_scores(q))


@pytest.mark.parametrize("damage", ["truncate_counts", "flip_byte", "drop_vocab", "garbage_manifest", "no_current"])
def test_damaged_directory_is_the_same_clear_error_as_bm25(tmp_path: Path, damage: str) -> None:
    messages = []
    for cls in (BM25Index, TfidfIndex):
        target = tmp_path / cls.__name__
        cls.from_texts(CORPUS).save(target)
        snap = persistence.live_snapshot(target)
        if damage == "truncate_counts":
            data = (snap / "counts.npz").read_bytes()
            (snap / "counts.npz").write_bytes(data[: len(data) // 2])
        elif damage == "flip_byte":
            data = bytearray((snap / "documents.json").read_bytes())
            data[10] ^= 0xFF
            (snap / "documents.json").write_bytes(bytes(data))
        elif damage == "drop_vocab":
            (snap / "vocab.json").unlink()
        elif damage == "garbage_manifest":
            (snap / "manifest.json").write_text("{not json")
        else:
            (target / "CURRENT").unlink()
        with pytest.raises(IndexFormatError, match=r"truncated|corrupted|missing|not a saved") as err:
            cls.load(target)
        messages.append(re.sub(r"snap-[0-9a-f]+", "snap", str(err.value).replace(str(target), "<dir>")))
    assert messages[0] == messages[1]


def test_loading_another_kind_or_tokenizer_is_an_error(tmp_path: Path) -> None:
    BM25Index.from_texts(CORPUS).save(tmp_path / "bm25")
    with pytest.raises(IndexFormatError, match=r"'lorag\.bm25' index, expected 'lorag\.tfidf'"):
        TfidfIndex.load(tmp_path / "bm25")
    TfidfIndex.from_texts(CORPUS).save(tmp_path / "tfidf")
    with pytest.raises(SettingsMismatchError, match=r"tokenizer.*language"):
        TfidfIndex.load(tmp_path / "tfidf", tokenizer=Tokenizer("spanish"))


def test_bad_input_is_a_clear_error_and_changes_nothing() -> None:
    with pytest.raises(ValueError, match="corpus is empty"):
        TfidfIndex.from_texts([])
    index = TfidfIndex.from_texts(CORPUS, ids=IDS)
    for query in ("", "   "):
        with pytest.raises(ValueError, match="query is empty"):
            index.search(query)
    with pytest.raises(TypeError, match="query must be a str"):
        index.get_scores(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sublinear_tf must be True or False, got 'yes'"):
        TfidfIndex(sublinear_tf="yes")  # type: ignore[arg-type]
    before = index.get_scores("Paris")
    with pytest.raises(KeyError, match="unknown ids"):
        index.delete(["doc-1", "nope"])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(["Paris again"], ids=["doc-2"])
    assert index.docs.ids == IDS
    np.testing.assert_array_equal(index.get_scores("Paris"), before)


def test_hybrid_with_tfidf_round_trips_save_load(tmp_path: Path, tiny_embedder) -> None:
    hybrid = HybridRetriever.from_texts(
        CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS, sparse="tfidf", sparse_kwargs={"sublinear_tf": True}
    )
    assert isinstance(hybrid.sparse, TfidfIndex) and hybrid.sparse.sublinear_tf
    tfidf = {h.id: h.score for h in hybrid.sparse.search("Paris capital", k=10)}
    hits = hybrid.search("Paris capital", k=10)
    assert all(set(h.component_scores) == {"tfidf", "dense"} for h in hits)
    assert all(h.component_scores["tfidf"] == pytest.approx(tfidf.get(h.id, 0.0)) for h in hits)
    hybrid.save(tmp_path / "h")
    assert (persistence.live_snapshot(tmp_path / "h") / "tfidf").is_dir()
    loaded = HybridRetriever.load(tmp_path / "h", tiny_embedder)
    assert isinstance(loaded.sparse, TfidfIndex) and loaded.settings() == hybrid.settings()
    for q in QUERIES:
        assert loaded.search(q, k=5) == hybrid.search(q, k=5)
        assert loaded.search(q, k=5, filter={"topic": "animals"}) == hybrid.search(q, k=5, filter={"topic": "animals"})


def test_hybrid_sparse_choice_is_checked(tiny_embedder) -> None:
    with pytest.raises(ValueError, match=r"unknown sparse index 'splade'; choose one of \['bm25', 'tfidf'\]"):
        HybridRetriever.from_texts(CORPUS, tiny_embedder, sparse="splade")
    with pytest.raises(
        ValueError, match=r"unknown components in weights: \['bm25'\]; choose from \['tfidf', 'dense'\]"
    ):
        HybridRetriever.from_texts(CORPUS, tiny_embedder, sparse="tfidf", fusion="rrf", weights={"bm25": 2.0})

"""Every bad input named in issue 3 gives a clear error and leaves the index exactly as it was."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS


def _snapshot(hybrid: HybridRetriever) -> tuple:
    return (
        copy.deepcopy(hybrid.bm25.docs.to_json()),
        dict(hybrid.bm25.vocab),
        hybrid.bm25._post_scores.copy(),
        copy.deepcopy(hybrid.dense.docs.to_json()),
        hybrid.dense.vectors().copy(),
        [hybrid.search(q, k=3) for q in ("fox", "paris capital")],
    )


def _assert_same(a: tuple, b: tuple) -> None:
    assert a[0] == b[0] and a[1] == b[1] and a[3] == b[3] and a[5] == b[5]
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[4], b[4])


@pytest.fixture
def hybrid(tiny_embedder) -> HybridRetriever:
    return HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS)


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_empty_query(hybrid: HybridRetriever, query: str) -> None:
    for searcher in (hybrid, hybrid.bm25, hybrid.dense):
        with pytest.raises(ValueError, match="query is empty"):
            searcher.search(query)


def test_non_string_query(hybrid: HybridRetriever) -> None:
    with pytest.raises(TypeError, match="query must be a str"):
        hybrid.search(None)  # type: ignore[arg-type]


def test_empty_corpus(tiny_embedder) -> None:
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Index.from_texts([])
    with pytest.raises(ValueError, match="corpus is empty"):
        DenseIndex.from_texts([], tiny_embedder)
    with pytest.raises(ValueError, match="corpus is empty"):
        HybridRetriever.from_texts([], tiny_embedder)


def test_duplicate_ids(hybrid: HybridRetriever) -> None:
    before = _snapshot(hybrid)
    with pytest.raises(ValueError, match=r"duplicate ids in the batch: \['n1'\]"):
        hybrid.add(["one", "two"], ids=["n1", "n1"])
    with pytest.raises(ValueError, match=r"already in the index: \['doc-3'\]"):
        hybrid.add(["new text", "other"], ids=["fresh", "doc-3"])
    _assert_same(_snapshot(hybrid), before)


def test_delete_unknown_id(hybrid: HybridRetriever) -> None:
    before = _snapshot(hybrid)
    with pytest.raises(KeyError, match=r"unknown ids.*nope"):
        hybrid.delete(["doc-1", "nope"])
    _assert_same(_snapshot(hybrid), before)


def test_wrong_dimension_embeddings(hybrid: HybridRetriever) -> None:
    before = _snapshot(hybrid)
    dim = hybrid.dense.dimension
    with pytest.raises(ValueError, match=f"dimension {dim + 1}; this index holds {dim}-dimensional"):
        hybrid.add(["a text"], ids=["w"], embeddings=np.ones((1, dim + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        hybrid.add(["a", "b"], ids=["w1", "w2"], embeddings=np.ones((1, dim), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        hybrid.add(["a"], ids=["w3"], embeddings=np.full((1, dim), np.nan, dtype=np.float32))
    _assert_same(_snapshot(hybrid), before)


def test_mismatched_lengths_and_types(hybrid: HybridRetriever) -> None:
    before = _snapshot(hybrid)
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        hybrid.add(["x"], ids=["a", "b"])
    with pytest.raises(TypeError, match="not one string"):
        hybrid.add("a single string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON-serialisable"):
        hybrid.add(["x"], ids=["j"], metadatas=[{"when": object()}])
    _assert_same(_snapshot(hybrid), before)


def test_bad_settings_name_the_choices(tiny_embedder) -> None:
    with pytest.raises(ValueError, match=r"choose one of \['lucene', 'okapi', 'bm25l', 'bm25plus'\]"):
        BM25Index("bm99")
    with pytest.raises(ValueError, match=r"choose one of \['flat', 'hnsw', 'ivf'\]"):
        DenseIndex(tiny_embedder, index_type="lsh")
    with pytest.raises(ValueError, match=r"choose one of \['rrf', 'convex', 'store'\]"):
        HybridRetriever(BM25Index(), DenseIndex(tiny_embedder), fusion="max")
    with pytest.raises(ValueError, match="k must be a non-negative integer"):
        BM25Index.from_texts(CORPUS).search("fox", k=-1)

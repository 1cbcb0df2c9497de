"""HybridRetriever: component scores and ranks on each result, k per call, filters before the cut, dedup by id."""

from __future__ import annotations

import numpy as np
import pytest

from lorag.retrieval import DenseIndex, HybridRetriever, SearchHit
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS


@pytest.fixture(scope="module")
def hybrid(tiny_embedder) -> HybridRetriever:
    return HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS)


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_results_carry_fused_and_component_scores(hybrid: HybridRetriever, fusion: str) -> None:
    retriever = HybridRetriever(hybrid.bm25, hybrid.dense, fusion=fusion)
    hits = retriever.search("Paris capital", k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    bm25 = {h.id: h for h in hybrid.bm25.search("Paris capital", k=100)}
    dense = {h.id: h for h in hybrid.dense.search("Paris capital", k=100)}
    for h in hits:
        assert set(h.component_scores) == set(h.component_ranks) == {"bm25", "dense"}
        assert h.component_scores["dense"] == pytest.approx(dense[h.id].score)
        assert h.component_ranks["dense"] == dense[h.id].rank
        if h.id in bm25:
            assert h.component_scores["bm25"] == pytest.approx(bm25[h.id].score)
            assert h.component_ranks["bm25"] == bm25[h.id].rank
        else:  # outside BM25's candidates: its exact score (0, no query word) is still reported, without a rank
            assert h.component_scores["bm25"] == 0.0 and h.component_ranks["bm25"] is None
        assert h.text == CORPUS[IDS.index(h.id)] and h.metadata == METADATAS[IDS.index(h.id)]
    if fusion == "rrf":
        top = hits[0]
        expected = sum(1 / (60 + r) for r in top.component_ranks.values() if r is not None)
        assert top.score == pytest.approx(expected)


def test_k_per_call(hybrid: HybridRetriever) -> None:
    assert len(hybrid.search("fox", k=1)) == 1
    assert len(hybrid.search("fox", k=7)) == 7
    assert len(hybrid.search("fox", k=100)) == len(CORPUS)
    assert hybrid.search("fox", k=0) == []


def test_filters_apply_before_the_cut(hybrid: HybridRetriever) -> None:
    # Only 3 documents are about computing or from 2001: k=3 must return exactly them, whatever their score.
    hits = hybrid.search("Paris capital city", k=3, filter={"topic": ["computing", "x"]})
    assert {h.id for h in hits} == {"doc-4", "doc-7"}
    hits = hybrid.search("Paris capital city", k=3, filter={"topic": "animals"})
    assert len(hits) == 3 and all(h.metadata["topic"] == "animals" for h in hits)
    hits = hybrid.search("Paris", k=5, filter={"topic": "geography", "year": [2003, 2009]})
    assert {h.id for h in hits} == {"doc-2", "doc-8"}
    bm25_hits = hybrid.bm25.search("Paris", k=5, filter={"year": 2004})
    assert [h.id for h in bm25_hits] == []  # doc-3 has no 'Paris': BM25 returns only documents that match
    assert [h.id for h in hybrid.dense.search("Paris", k=5, filter={"year": 2004})] == ["doc-3"]


class RepeatingStore:
    """A vector store that returns one id twice (as chunked stores can) and one id BM25 does not know."""

    def add(self, texts, ids=None, metadatas=None):  # type: ignore[no-untyped-def]
        return list(ids or [])

    def delete(self, ids):  # type: ignore[no-untyped-def]
        pass

    def search(self, query, k=10, filter=None):  # type: ignore[no-untyped-def]
        return [
            SearchHit("doc-1", 0.9, 1, CORPUS[1]),
            SearchHit("doc-1", 0.8, 2, CORPUS[1]),
            SearchHit("elsewhere", 0.5, 3, "only in the store", {"src": "store"}),
        ][:k]


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_results_are_unique_by_id_even_when_a_store_repeats_one(hybrid: HybridRetriever, fusion: str) -> None:
    retriever = HybridRetriever(hybrid.bm25, RepeatingStore(), fusion=fusion)
    hits = retriever.search("foxes", k=10)
    ids = [h.id for h in hits]
    assert len(ids) == len(set(ids)) and "doc-1" in ids
    assert hits[ids.index("doc-1")].component_scores["dense"] == 0.9
    store_only = hits[ids.index("elsewhere")]
    assert store_only.text == "only in the store" and store_only.metadata == {"src": "store"}


def test_dense_flat_search_is_exact(hybrid: HybridRetriever, tiny_embedder) -> None:
    query = tiny_embedder.embed_query("wolves")
    brute = hybrid.dense.vectors() @ query
    got = hybrid.dense.search("wolves", k=5)
    np.testing.assert_allclose([h.score for h in got], np.sort(brute)[::-1][:5], rtol=1e-5)
    for h in got:  # the random tiny model gives tied vectors, so compare each hit's score, not the id order
        assert h.score == pytest.approx(float(brute[IDS.index(h.id)]), rel=1e-5)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_are_selectable(tiny_embedder, index_type: str) -> None:
    dense = DenseIndex.from_texts(CORPUS, tiny_embedder, ids=IDS, index_type=index_type, ivf_nlist=2, ivf_nprobe=2)
    assert len(dense.search("fox", k=3)) == 3
    assert type(dense._index).__name__ == {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}[index_type]


@pytest.mark.parametrize("normalization", ["zscore", "minmax"])
def test_convex_normalises_exact_scores_over_all_candidates(hybrid: HybridRetriever, normalization: str) -> None:
    retriever = HybridRetriever(hybrid.bm25, hybrid.dense, fusion="convex", alpha=0.3, normalization=normalization)
    hits = retriever.search("foxes in Paris", k=len(CORPUS))  # dense returns every document: the union is the corpus
    assert len(hits) == len(CORPUS)
    bm25 = np.array([h.component_scores["bm25"] for h in hits])
    dense = np.array([h.component_scores["dense"] for h in hits])

    def norm(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std() if normalization == "zscore" else (x - x.min()) / (x.max() - x.min())

    np.testing.assert_allclose([h.score for h in hits], 0.3 * norm(dense) + 0.7 * norm(bm25), rtol=1e-6, atol=1e-9)


def test_bm25_retrieve_rows_matches_search(hybrid: HybridRetriever) -> None:
    queries = ["fox", "Paris capital", "zzz unknown"]
    rows, scores = hybrid.bm25.retrieve_rows(queries, k=3)
    for q, r, s in zip(queries, rows, scores, strict=True):
        hits = hybrid.bm25.search(q, k=3)
        assert [hybrid.bm25.docs.ids[i] for i in r if i >= 0] == [h.id for h in hits]
        assert s[: len(hits)].tolist() == [h.score for h in hits] and np.all(np.isneginf(s[len(hits) :]))

"""LangChain retrievers put the score where LangChain code looks for it: ``metadata["score"]`` (the fused score, on
the scale the docs state), ``metadata["relevance"]`` (the dense cosine clipped to [0, 1], what ``lorag ask`` gates
on) and the component scores under ``metadata["lorag"]``; ``create_rag_chain`` passes the scores on."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_lorag import LoragBM25Retriever, LoragHybridRetriever, create_rag_chain
from langchain_lorag.retrievers import relevance
from lorag.retrieval import BM25Index, HybridHit
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

DOCS = [Document(id=i, page_content=t, metadata=m) for i, t, m in zip(IDS, CORPUS, METADATAS, strict=True)]
QUERY = "Which animals belong to the dog family?"


def test_bm25_documents_carry_the_bm25_score() -> None:
    docs = LoragBM25Retriever.from_documents(DOCS, k=4).invoke(QUERY)
    expected = BM25Index.from_texts(CORPUS, ids=IDS).search(QUERY, k=4)
    assert [(d.id, d.metadata["score"]) for d in docs] == [(h.id, h.score) for h in expected]
    assert [d.metadata["lorag"] for d in docs] == [{"rank": r} for r in range(1, 5)]
    assert all("relevance" not in d.metadata for d in docs)  # no dense side, no similarity to state


def test_hybrid_score_is_the_fused_score_and_relevance_the_clipped_cosine(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, k=10)
    docs = retriever.invoke(QUERY)
    hits = retriever.retriever.search(QUERY, k=10)
    assert [(d.id, d.metadata["score"]) for d in docs] == [(h.id, h.score) for h in hits]
    query = tiny_embedder.embed_query(QUERY)
    vectors = tiny_embedder.embed_documents(CORPUS)
    cosines = {
        i: float(v @ query / np.linalg.norm(v) / np.linalg.norm(query)) for i, v in zip(IDS, vectors, strict=True)
    }
    for d in docs:
        assert d.metadata["relevance"] == pytest.approx(min(1.0, max(0.0, cosines[d.id])), abs=1e-5)
        assert d.metadata["lorag"]["component_scores"]["dense"] == pytest.approx(cosines[d.id], abs=1e-5)
        assert set(d.metadata["lorag"]) == {"rank", "component_scores", "component_ranks"}
        assert d.metadata["topic"] == METADATAS[IDS.index(d.id)]["topic"]  # the document's own metadata stays


@pytest.mark.parametrize(("dense", "expected"), [(-0.4, 0.0), (0.3, 0.3), (1.7, 1.0), (None, 0.0)])
def test_relevance_is_clipped_to_the_unit_interval(dense: float | None, expected: float) -> None:
    hit = HybridHit("a", 0.5, 1, "text", {}, {"bm25": 1.0, "dense": dense}, {"bm25": 1, "dense": None})
    assert relevance(hit) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("fusion", "low", "high"),
    [({"normalization": "minmax"}, 0.0, 1.0), ({"fusion": "rrf"}, 0.0, 2 / 61), ({}, -10.0, 10.0)],
)
def test_fused_score_stays_on_its_stated_scale(tiny_embedder, fusion: dict, low: float, high: float) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, k=10, fusion_kwargs=fusion)
    scores = [d.metadata["score"] for q in ("Paris", QUERY, "programming language") for d in retriever.invoke(q)]
    assert scores and all(low <= s <= high for s in scores)
    if not fusion:  # z-scores: some candidates above the average (> 0), some below
        assert min(scores) < 0 < max(scores)


def test_create_rag_chain_sees_the_scores(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, k=3)
    expected = {d.id: d.metadata["score"] for d in retriever.invoke(QUERY)}
    chain = create_rag_chain(retriever, FakeListChatModel(responses=["Foxes and wolves [1]."]))
    sources = chain.invoke(QUERY)["sources"]
    own = [s for s in sources if "hop" not in s.metadata]  # the follow-up search's passage scores another query
    assert len(sources) == len(own) + 1
    assert sorted(s.metadata["score"] for s in own) == sorted(expected.values())
    assert all(0.0 <= s.metadata["relevance"] <= 1.0 for s in own)

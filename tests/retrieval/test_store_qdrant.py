"""lorag's BM25 + fusion over Qdrant in local mode (``QdrantClient(path=...)``, the client API a cluster takes with
``url=``) through langchain-qdrant's ``QdrantVectorStore``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_qdrant", reason="pip install 'lorag[stores]'")

from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from langchain_lorag.vectorstores import LangChainVectorStoreBackend
from lorag.retrieval import BM25Index, HybridRetriever
from lorag.retrieval.filters import matches, parse
from lorag.retrieval.stores import StorePairingError
from tests.retrieval.store_fixtures import IDS, METADATAS, TEXTS, ConceptEmbeddings

COLLECTION = "docs"


def make_store(
    client: QdrantClient, embeddings: ConceptEmbeddings | None = None, **kwargs: object
) -> QdrantVectorStore:
    if not client.collection_exists(COLLECTION):
        client.create_collection(
            COLLECTION, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
        )
    return QdrantVectorStore(client, COLLECTION, embeddings or ConceptEmbeddings(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    opened = QdrantClient(path=str(tmp_path / "qdrant"))
    yield opened
    opened.close()


@pytest.fixture
def hybrid(client: QdrantClient) -> HybridRetriever:
    retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(make_store(client)))
    retriever.add(list(TEXTS.values()), ids=IDS, metadatas=list(METADATAS.values()))
    return retriever


def expected(filter: dict) -> set[str]:
    return {i for i in IDS if matches(METADATAS[i], filter)}


def test_round_trip(hybrid: HybridRetriever) -> None:
    hits = hybrid.search("wolves in packs", k=3)
    assert hits[0].id == "wolf"
    assert (hits[0].text, hits[0].metadata) == (TEXTS["wolf"], METADATAS["wolf"])
    assert hits[0].component_ranks == {"bm25": 1, "dense": 1}
    assert 0.0 < hits[0].component_scores["dense"] <= 1.0


PUSHED = [
    {"topic": "animals"},
    {"topic": ["animals", "geography"]},
    {"year": {"$gte": 2020, "$lt": 2023}},
    {"year": 2020.0},  # a number matches as a number: 2020.0 finds the stored 2020
    {"$or": [{"topic": "manuals"}, {"year": 2019}]},
]
LORAG_SIDE = [
    {"year": {"$ne": 2019}},  # keeps "berlin", which has no year
    {"$not": {"topic": "animals"}},
    {"$and": [{"topic": "animals"}, {"year": {"$nin": [2019]}}]},
]


@pytest.mark.parametrize("filter", PUSHED, ids=str)
def test_filters_are_applied_inside_the_store(hybrid: HybridRetriever, filter: dict) -> None:
    backend = hybrid.dense
    kwargs = backend._dialect.filter_kwargs(parse(filter))
    assert isinstance(kwargs.get("filter"), models.Filter)
    found = backend.vectorstore.similarity_search("anything", k=len(IDS), **kwargs)
    assert {d.metadata["lorag_id"] for d in found} == expected(filter)


@pytest.mark.parametrize("filter", PUSHED + LORAG_SIDE, ids=str)
def test_filters_hold_before_the_top_k_cut(hybrid: HybridRetriever, filter: dict) -> None:
    want = expected(filter)
    assert {h.id for h in hybrid.search("capital city", k=len(IDS), filter=filter)} == want
    top = hybrid.search("capital city", k=1, filter=filter)
    assert len(top) == 1 and top[0].id in want


def test_add_and_delete_stay_in_step(hybrid: HybridRetriever) -> None:
    hybrid.add(["Lyon is a city in France."], ids=["lyon"], metadatas=[{"topic": "geography"}])
    assert hybrid.dense.missing(["lyon"]) == []
    hybrid.delete(["lyon", "paris"])
    assert hybrid.dense.missing(["lyon", "paris", "wolf"]) == ["lyon", "paris"]
    assert {"lyon", "paris"}.isdisjoint(h.id for h in hybrid.search("city in France", k=len(IDS)))


def test_failure_mid_add_is_undone_in_the_store(client: QdrantClient, hybrid: HybridRetriever) -> None:
    """langchain-qdrant upserts in batches of 64: the second batch fails after the first is written."""
    failing = HybridRetriever(
        hybrid.sparse, LangChainVectorStoreBackend(make_store(client, ConceptEmbeddings(fail_on="poison")))
    )
    ids = [f"n{i}" for i in range(70)]
    texts = [f"note {i} about the pump" for i in range(69)] + ["poison"]
    with pytest.raises(RuntimeError, match="poison"):
        failing.add(texts, ids=ids)
    assert failing.dense.missing(ids) == ids  # the 64 written points were removed again
    assert client.count(COLLECTION).count == len(IDS)
    assert len(hybrid) == len(IDS) and "n0" not in hybrid.sparse.docs


def test_reopen_and_reload(tmp_path: Path, client: QdrantClient, hybrid: HybridRetriever) -> None:
    before = [(h.id, round(h.score, 6)) for h in hybrid.search("capital city", k=4)]
    hybrid.save(tmp_path / "lorag")
    client.close()
    reopened = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        loaded = HybridRetriever.load(tmp_path / "lorag", store=LangChainVectorStoreBackend(make_store(reopened)))
        assert [(h.id, round(h.score, 6)) for h in loaded.search("capital city", k=4)] == before
    finally:
        reopened.close()
    elsewhere = QdrantClient(path=str(tmp_path / "empty"))
    try:
        with pytest.raises(StorePairingError, match="lacks 6 of 6"):
            HybridRetriever.load(tmp_path / "lorag", store=LangChainVectorStoreBackend(make_store(elsewhere)))
    finally:
        elsewhere.close()


def test_collection_of_another_dimension_is_refused(client: QdrantClient, hybrid: HybridRetriever) -> None:
    store = make_store(client, ConceptEmbeddings(size=4), validate_collection_config=False)
    with pytest.raises(ValueError, match="'docs' holds 8-dimensional vectors but the store's embeddings give 4"):
        LangChainVectorStoreBackend(store)


def test_only_the_lexical_side_ranks_the_exact_term_first(hybrid: HybridRetriever) -> None:
    hits = {h.id: h for h in hybrid.search("E4107 malfunction", k=len(IDS))}
    assert hits["e4107"].component_ranks["bm25"] == 1
    assert hits["guide"].component_ranks["dense"] == 1
    assert hits["e4107"].component_ranks["dense"] != 1
    assert next(iter(hits)) == "e4107"


def test_lexical_only_candidates_get_the_stores_exact_dense_score(hybrid: HybridRetriever) -> None:
    """As with FAISS: documents outside the store's top are scored by the store, in one search restricted to them."""
    full = {h.id: h.score for h in hybrid.dense.search("E4107 malfunction", k=len(IDS))}
    scored = hybrid.dense.score_documents("E4107 malfunction", ["e4107", "wolf", "unknown"])
    assert scored == pytest.approx({"e4107": full["e4107"], "wolf": full["wolf"]}, abs=1e-6)
    narrow = HybridRetriever(hybrid.sparse, hybrid.dense, depth={"bm25": len(IDS), "dense": 1})
    (hit,) = narrow.search("E4107 malfunction", k=1)  # the store returns "guide" alone; BM25 only "e4107"
    assert hit.component_scores["dense"] == pytest.approx(full[hit.id], abs=1e-6)
    assert hit.component_scores["bm25"] is not None

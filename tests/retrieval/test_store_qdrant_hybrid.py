"""``fusion="store"`` over Qdrant in local mode: the store fuses its sparse (lorag's BM25 as sparse vectors, IDF applied
by Qdrant) and dense rankings with RRF in one query; lorag keeps add/delete, filters and save/load as for its own
fusion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_qdrant", reason="pip install 'lorag[stores]'")

from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient, models

from langchain_lorag.sparse_embeddings import LoragSparseEmbeddings
from langchain_lorag.vectorstores import LangChainEmbedder, LangChainVectorStoreBackend
from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever
from lorag.retrieval.filters import matches, parse
from lorag.retrieval.store_sparse import BM25SparseEncoder
from lorag.retrieval.stores import StorePairingError
from tests.retrieval.store_fixtures import IDS, METADATAS, TEXTS, ConceptEmbeddings

COLLECTION = "docs"


def make_store(
    client: QdrantClient, *, idf: bool = True, mode: RetrievalMode = RetrievalMode.HYBRID
) -> QdrantVectorStore:
    if not client.collection_exists(COLLECTION):
        modifier = models.Modifier.IDF if idf else None
        client.create_collection(
            COLLECTION,
            vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
            sparse_vectors_config={"sparse": models.SparseVectorParams(modifier=modifier)},
        )
    return QdrantVectorStore(
        client,
        COLLECTION,
        ConceptEmbeddings(),
        retrieval_mode=mode,
        vector_name="dense",
        sparse_embedding=LoragSparseEmbeddings.fit(list(TEXTS.values())),
        sparse_vector_name="sparse",
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    opened = QdrantClient(path=str(tmp_path / "qdrant"))
    yield opened
    opened.close()


@pytest.fixture
def hybrid(client: QdrantClient) -> HybridRetriever:
    retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(make_store(client)), fusion="store")
    retriever.add(list(TEXTS.values()), ids=IDS, metadatas=list(METADATAS.values()))
    return retriever


def fused(retriever: HybridRetriever) -> tuple[str, float, set[str]]:
    """The top hit and its fused score (first in both rankings), and every returned id. Not the whole order: "paris"
    and "berlin" tie in the vector ranking, which the store breaks by storage order, and a reopen may change it."""
    hits = retriever.search("wolves hunt in packs in the forest", k=len(IDS))
    return hits[0].id, round(hits[0].score, 6), {h.id for h in hits}


def store_of(retriever: HybridRetriever) -> LangChainVectorStoreBackend:
    assert isinstance(retriever.dense, LangChainVectorStoreBackend)
    return retriever.dense


def expected(filter: dict) -> set[str]:
    return {i for i in IDS if matches(METADATAS[i], filter)}


def test_round_trip(hybrid: HybridRetriever) -> None:
    hits = hybrid.search("wolves in packs", k=3)
    assert hits[0].id == "wolf"
    assert (hits[0].text, hits[0].metadata) == (TEXTS["wolf"], METADATAS["wolf"])
    assert hits[0].component_ranks == {"store": 1}
    assert hits[0].component_scores["store"] == pytest.approx(hits[0].score)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score


def test_sparse_side_is_lorags_bm25(client: QdrantClient, hybrid: HybridRetriever) -> None:
    """Qdrant's sparse ranking (its IDF times the encoder's term weights) gives lorag BM25Index's scores."""
    encoder = BM25SparseEncoder.fit(list(TEXTS.values()))
    for query in ("capital city of France", "pump errors", "hunt at night"):
        vector = encoder.encode_query(query)
        points = client.query_points(
            COLLECTION, query=models.SparseVector(indices=vector.indices, values=vector.values), using="sparse"
        ).points
        got = {(p.payload or {})["metadata"]["lorag_id"]: p.score for p in points}
        want = {h.id: h.score for h in hybrid.sparse.search(query, k=len(IDS))}
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, rel=1e-5)


PUSHED = [
    {"topic": "animals"},
    {"topic": ["animals", "geography"]},
    {"year": {"$gte": 2020, "$lt": 2023}},
    {"year": 2020.0},
    {"$or": [{"topic": "manuals"}, {"year": 2019}]},
]
LORAG_SIDE = [
    {"year": {"$ne": 2019}},  # keeps "berlin", which has no year
    {"$not": {"topic": "animals"}},
    {"$and": [{"topic": "animals"}, {"year": {"$nin": [2019]}}]},
]


@pytest.mark.parametrize("filter", PUSHED, ids=str)
def test_filters_are_applied_inside_the_stores_hybrid_search(hybrid: HybridRetriever, filter: dict) -> None:
    backend = store_of(hybrid)
    kwargs = backend._dialect.filter_kwargs(parse(filter))
    assert isinstance(kwargs.get("filter"), models.Filter)
    found = backend.vectorstore.similarity_search("capital city", k=len(IDS), **kwargs)
    assert {d.metadata["lorag_id"] for d in found} == expected(filter)


@pytest.mark.parametrize("filter", PUSHED + LORAG_SIDE, ids=str)
def test_filters_hold_before_the_top_k_cut(hybrid: HybridRetriever, filter: dict) -> None:
    want = expected(filter)
    assert {h.id for h in hybrid.search("capital city", k=len(IDS), filter=filter)} == want
    top = hybrid.search("capital city", k=1, filter=filter)
    assert len(top) == 1 and top[0].id in want


def test_add_and_delete_stay_in_step(hybrid: HybridRetriever) -> None:
    hybrid.add(["Lyon is a city in France."], ids=["lyon"], metadatas=[{"topic": "geography"}])
    assert hybrid.search("Lyon", k=1)[0].id == "lyon"  # found by its sparse vector: no concept names Lyon
    hybrid.delete(["lyon", "paris"])
    assert store_of(hybrid).missing(["lyon", "paris", "wolf"]) == ["lyon", "paris"]
    assert {"lyon", "paris"}.isdisjoint(h.id for h in hybrid.search("Lyon city in France", k=len(IDS)))
    with pytest.raises(KeyError):
        hybrid.delete(["lyon"])
    assert len(hybrid) == len(IDS) - 1


def test_reopen_and_reload(tmp_path: Path, client: QdrantClient, hybrid: HybridRetriever) -> None:
    before = fused(hybrid)
    hybrid.save(tmp_path / "lorag")
    client.close()
    reopened = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        loaded = HybridRetriever.load(tmp_path / "lorag", store=LangChainVectorStoreBackend(make_store(reopened)))
        assert loaded.fusion == "store"
        assert fused(loaded) == before
        dense_only = LangChainVectorStoreBackend(make_store(reopened, mode=RetrievalMode.DENSE))
        with pytest.raises(ValueError, match="retrieval_mode='dense'"):
            HybridRetriever.load(tmp_path / "lorag", store=dense_only)  # saved with fusion='store'
    finally:
        reopened.close()
    elsewhere = QdrantClient(path=str(tmp_path / "empty"))
    try:
        with pytest.raises(StorePairingError, match="lacks 6 of 6"):
            HybridRetriever.load(tmp_path / "lorag", store=LangChainVectorStoreBackend(make_store(elsewhere)))
    finally:
        elsewhere.close()


def test_only_the_lexical_side_ranks_the_exact_term_first(hybrid: HybridRetriever) -> None:
    dense = {h.id: h.rank for h in store_of(hybrid).search("E4107 malfunction", k=len(IDS))}
    assert dense["guide"] == 1 and dense["e4107"] != 1  # vector-only, although the store is in hybrid mode
    assert hybrid.search("E4107 malfunction", k=1)[0].id == "e4107"  # the store's fusion lets the code win


def test_lorags_fusion_over_a_hybrid_mode_store(client: QdrantClient, hybrid: HybridRetriever) -> None:
    ours = HybridRetriever(hybrid.sparse, LangChainVectorStoreBackend(make_store(client)))
    hit = ours.search("E4107 malfunction", k=1)[0]
    assert hit.id == "e4107" and set(hit.component_ranks) == {"bm25", "dense"}


def test_a_store_that_cannot_fuse_is_refused(client: QdrantClient) -> None:
    dense_only = LangChainVectorStoreBackend(make_store(client, mode=RetrievalMode.DENSE))
    with pytest.raises(ValueError, match=r"RetrievalMode\.HYBRID and a sparse_embedding"):
        HybridRetriever(BM25Index(), dense_only, fusion="store")
    with pytest.raises(ValueError, match="a DenseIndex cannot"):
        HybridRetriever(BM25Index(), DenseIndex(LangChainEmbedder(ConceptEmbeddings())), fusion="store")
    with pytest.raises(ValueError, match=r"choose one of \['rrf', 'convex', 'store'\]"):
        HybridRetriever(BM25Index(), dense_only, fusion="stor")


def test_a_collection_without_idf_is_refused(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "no-idf"))
    try:
        backend = LangChainVectorStoreBackend(make_store(client, idf=False))
        with pytest.raises(ValueError, match="does not weight its sparse vectors by IDF"):
            HybridRetriever(BM25Index(), backend, fusion="store")
    finally:
        client.close()


def test_query_vector_is_refused(hybrid: HybridRetriever) -> None:
    import numpy as np

    with pytest.raises(ValueError, match="vector stores embed themselves"):
        hybrid.search("wolves", k=1, query_vector=np.ones(8, dtype=np.float32))


def test_llamaindex_retriever_over_the_store(hybrid: HybridRetriever) -> None:
    """LlamaIndex's LoragHybridRetriever takes any HybridRetriever, the store-backed one and fusion="store" included."""
    pytest.importorskip("llama_index.core")
    from llama_index.retrievers.lorag import LoragHybridRetriever as LlamaHybrid

    for retriever in (hybrid, HybridRetriever(hybrid.sparse, hybrid.dense)):
        nodes = LlamaHybrid(retriever, similarity_top_k=2).retrieve("E4107 malfunction")
        assert len(nodes) == 2 and nodes[0].node.node_id == "e4107"
        assert nodes[0].node.get_content() == TEXTS["e4107"]
        assert nodes[0].node.metadata["topic"] == "manuals"
    filtered = LlamaHybrid(hybrid, similarity_top_k=6, filter={"topic": "animals"}).retrieve("hunt")
    assert {n.node.node_id for n in filtered} == {"wolf", "fox"}

"""``fusion="store"`` over a real PostgreSQL 16 + pgvector server: langchain-postgres ``PGVectorStore`` with a
``HybridSearchConfig`` fuses Postgres full-text search with its vectors; lorag keeps add/delete, filters and
save/load as for its own fusion."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_postgres", reason="pip install 'lorag[stores]'")

from langchain_postgres import PGEngine, PGVector, PGVectorStore
from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig, reciprocal_rank_fusion

from langchain_lorag.vectorstores import LangChainVectorStoreBackend
from lorag.retrieval import BM25Index, HybridRetriever
from lorag.retrieval.filters import matches, parse
from lorag.retrieval.stores import StorePairingError, StoreSyncError
from tests.retrieval.store_fixtures import IDS, METADATAS, TEXTS, ConceptEmbeddings, PostgresServer, postgres_server


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as started:
        yield started


@pytest.fixture(scope="module")
def engine(server: PostgresServer) -> Iterator[PGEngine]:
    opened = PGEngine.from_connection_string(server.url, pool_pre_ping=True)  # survives a server restart
    yield opened
    opened._run_as_sync(opened.close())


def config(table: str) -> HybridSearchConfig:
    """RRF over full-text and vector rankings; the store needs the tsvector column named, and index names are
    per schema."""
    return HybridSearchConfig(
        tsv_column="content_tsv", fusion_function=reciprocal_rank_fusion, index_name=f"{table}_tsv_index"
    )


def make_store(
    engine: PGEngine, table: str, *, hybrid: bool = True, embeddings: ConceptEmbeddings | None = None
) -> PGVectorStore:
    """A PGVectorStore over ``table`` (created with a tsvector column and its GIN index if new)."""
    tables = engine._run_as_sync(_tables(engine))
    if table not in tables:
        engine.init_vectorstore_table(table, vector_size=8, hybrid_search_config=config(table))
    store = PGVectorStore.create_sync(
        engine, ConceptEmbeddings() if embeddings is None else embeddings, table,
        hybrid_search_config=config(table) if hybrid else None,
    )  # fmt: skip
    if table not in tables and hybrid:
        store.apply_hybrid_search_index()
    return store


async def _tables(engine: PGEngine) -> set[str]:
    from sqlalchemy import text

    async with engine._pool.connect() as conn:
        rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        return {r[0] for r in rows}


@pytest.fixture
def table() -> str:
    return f"docs_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hybrid(engine: PGEngine, table: str) -> HybridRetriever:
    retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(make_store(engine, table)), fusion="store")
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


def inner(retriever: HybridRetriever) -> Any:
    """The AsyncPGVectorStore under the backend's PGVectorStore (its table and hybrid config)."""
    return store_of(retriever)._dialect.inner  # type: ignore[attr-defined]


def expected(filter: dict) -> set[str]:
    return {i for i in IDS if matches(METADATAS[i], filter)}


def test_round_trip(hybrid: HybridRetriever) -> None:
    hits = hybrid.search("wolves packs", k=3)
    assert hits[0].id == "wolf"
    assert (hits[0].text, hits[0].metadata) == (TEXTS["wolf"], METADATAS["wolf"])
    assert hits[0].component_ranks == {"store": 1}
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
    assert store_of(hybrid).pairing() == {"store": "langchain_postgres.PGVectorStore", "collection": (
        f"public.{inner(hybrid).table_name}"), "dimension": 8}  # fmt: skip


PUSHED = [
    {"topic": "animals"},
    {"topic": ["animals", "geography"]},
    {"$or": [{"topic": "manuals"}, {"topic": "geography"}]},
]
LORAG_SIDE = [
    {"year": {"$gte": 2020, "$lt": 2023}},  # numbers: the store would cast every row's JSON value
    {"year": 2020.0},
    {"year": {"$ne": 2019}},  # keeps "berlin", which has no year
    {"$not": {"topic": "animals"}},
    {"$and": [{"topic": "animals"}, {"year": {"$nin": [2019]}}]},
]


@pytest.mark.parametrize("filter", PUSHED, ids=str)
def test_filters_are_applied_inside_the_stores_hybrid_search(hybrid: HybridRetriever, filter: dict) -> None:
    backend = store_of(hybrid)
    kwargs = backend._dialect.filter_kwargs(parse(filter))
    assert kwargs, "this filter should be pushed down"
    found = backend._dialect.hybrid_scored("capital city", len(IDS), len(IDS), kwargs)
    assert {d.metadata["lorag_id"] for d, _ in found} == expected(filter)


@pytest.mark.parametrize("filter", PUSHED + LORAG_SIDE, ids=str)
def test_filters_hold_before_the_top_k_cut(hybrid: HybridRetriever, filter: dict) -> None:
    want = expected(filter)
    assert {h.id for h in hybrid.search("capital city", k=len(IDS), filter=filter)} == want
    top = hybrid.search("capital city", k=1, filter=filter)
    assert len(top) == 1 and top[0].id in want


def test_add_and_delete_stay_in_step(hybrid: HybridRetriever) -> None:
    hybrid.add(["Lyon is a city in France."], ids=["lyon"], metadatas=[{"topic": "geography"}])
    assert hybrid.search("Lyon", k=1)[0].id == "lyon"  # found by full-text search: no concept names Lyon
    hybrid.delete(["lyon", "paris"])
    assert store_of(hybrid).missing(["lyon", "paris", "wolf"]) == ["lyon", "paris"]
    assert {"lyon", "paris"}.isdisjoint(h.id for h in hybrid.search("city", k=len(IDS)))
    with pytest.raises(KeyError):
        hybrid.delete(["lyon"])
    assert len(hybrid) == len(IDS) - 1


def test_unreachable_store_leaves_lorag_unchanged(server: PostgresServer, hybrid: HybridRetriever) -> None:
    server.stop()
    try:
        with pytest.raises(StoreSyncError) as caught:
            hybrid.add(["Lyon is a city in France."], ids=["lyon"])
        assert caught.value.ids == ["lyon"] and "delete" in caught.value.repair
        assert len(hybrid) == len(IDS) and "lyon" not in hybrid.sparse.docs
        with pytest.raises(StoreSyncError, match="still holds them"):
            hybrid.delete(["paris"])
        assert "paris" in hybrid.sparse.docs
    finally:
        server.start()
    assert store_of(hybrid).missing(["lyon", "paris"]) == ["lyon"]
    hybrid.add(["Lyon is a city in France."], ids=["lyon"])
    assert hybrid.search("Lyon", k=1)[0].id == "lyon"


def test_restart_and_reload(
    server: PostgresServer, engine: PGEngine, table: str, hybrid: HybridRetriever, tmp_path: Path
) -> None:
    before = fused(hybrid)
    hybrid.save(tmp_path / "lorag")
    server.stop()
    server.start()
    loaded = HybridRetriever.load(tmp_path / "lorag", store=LangChainVectorStoreBackend(make_store(engine, table)))
    assert loaded.fusion == "store"
    assert fused(loaded) == before

    other = LangChainVectorStoreBackend(make_store(engine, table + "_other"))
    with pytest.raises(StorePairingError, match=f"collection 'public.{table}'"):
        HybridRetriever.load(tmp_path / "lorag", store=other)
    plain = LangChainVectorStoreBackend(make_store(engine, table, hybrid=False))
    with pytest.raises(ValueError, match="no hybrid_search_config"):
        HybridRetriever.load(tmp_path / "lorag", store=plain)  # saved with fusion='store'


def test_collection_of_another_dimension_is_refused(engine: PGEngine, hybrid: HybridRetriever) -> None:
    table = inner(hybrid).table_name
    with pytest.raises(ValueError, match="holds 8-dimensional vectors but the store's embeddings give 4"):
        LangChainVectorStoreBackend(make_store(engine, table, embeddings=ConceptEmbeddings(size=4)))


def test_the_exact_term_ranks_first_when_full_text_matches(hybrid: HybridRetriever) -> None:
    dense = {h.id: h.rank for h in store_of(hybrid).search("E4107 malfunction", k=len(IDS))}
    assert dense["guide"] == 1 and dense["e4107"] != 1  # vector-only, although the store has a hybrid config
    assert hybrid.search("code E4107", k=1)[0].id == "e4107"


def test_full_text_needs_every_query_term(hybrid: HybridRetriever) -> None:
    """plainto_tsquery ANDs the query's terms: no document has both, so only the vector ranking is left, unlike
    lorag's BM25 (the cost that benchmarks/stores.py measures on SciFact)."""
    assert hybrid.search("E4107 malfunction", k=1)[0].id == "guide"
    ours = HybridRetriever(hybrid.sparse, hybrid.dense)  # lorag's BM25 + fusion over the same store
    assert ours.search("E4107 malfunction", k=1)[0].id == "e4107"


def test_queries_do_not_leak_into_the_stores_config(hybrid: HybridRetriever) -> None:
    """The store writes a query into a shared config's fts_query; lorag passes a copy, so a later query is its own."""
    assert hybrid.search("code E4107", k=1)[0].id == "e4107"
    assert hybrid.search("wolves packs", k=1)[0].id == "wolf"
    assert inner(hybrid).hybrid_search_config.fts_query == ""


def test_stores_that_cannot_fuse_are_refused(server: PostgresServer, engine: PGEngine, table: str) -> None:
    plain = LangChainVectorStoreBackend(make_store(engine, table, hybrid=False))
    with pytest.raises(ValueError, match="no hybrid_search_config"):
        HybridRetriever(BM25Index(), plain, fusion="store")
    legacy: Any = PGVector(ConceptEmbeddings(), connection=server.url, collection_name=table, use_jsonb=True)
    with pytest.raises(ValueError, match="PGVector has no lexical search of its own"):
        HybridRetriever(BM25Index(), LangChainVectorStoreBackend(legacy), fusion="store")

"""lorag's BM25 + fusion over a real PostgreSQL 16 + pgvector server (langchain-postgres ``PGVector``) as dense side."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_postgres", reason="pip install 'lorag[stores]'")

from langchain_core.vectorstores import InMemoryVectorStore
from langchain_postgres import PGVector
from sqlalchemy import create_engine, event, text

from langchain_lorag.vectorstores import LangChainVectorStoreBackend
from lorag.retrieval import BM25Index, HybridRetriever
from lorag.retrieval.filters import matches, parse
from lorag.retrieval.stores import CandidateStore, StorePairingError, StoreSyncError
from tests.retrieval.store_fixtures import IDS, METADATAS, TEXTS, ConceptEmbeddings, PostgresServer, postgres_server


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as started:
        yield started


def make_store(server: PostgresServer, collection: str, embeddings: ConceptEmbeddings | None = None) -> PGVector:
    """A PGVector collection; pool_pre_ping lets its engine survive a server restart."""
    return PGVector(
        embeddings or ConceptEmbeddings(),
        connection=server.url,
        collection_name=collection,
        use_jsonb=True,
        engine_args={"pool_pre_ping": True},
    )


@pytest.fixture
def collection() -> str:
    return f"docs_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hybrid(server: PostgresServer, collection: str) -> HybridRetriever:
    retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(make_store(server, collection)))
    retriever.add(list(TEXTS.values()), ids=IDS, metadatas=list(METADATAS.values()))
    return retriever


def expected(filter: dict) -> set[str]:
    return {i for i in IDS if matches(METADATAS[i], filter)}


def test_round_trip(hybrid: HybridRetriever) -> None:
    hits = hybrid.search("wolves in packs", k=3)
    assert hits[0].id == "wolf"
    assert hits[0].text == TEXTS["wolf"]
    assert hits[0].metadata == METADATAS["wolf"]
    assert hits[0].component_ranks == {"bm25": 1, "dense": 1}
    assert 0.0 < hits[0].component_scores["dense"] <= 1.0  # cosine relevance from the store


PUSHED = [
    {"topic": "animals"},
    {"topic": ["animals", "geography"]},
    {"year": {"$gte": 2020, "$lt": 2023}},
    {"year": 2020.0},  # a float finds the stored int, as lorag's own filters do
    {"$or": [{"topic": "manuals"}, {"year": 2019}]},
]


@pytest.mark.parametrize("filter", PUSHED, ids=str)
def test_filters_are_applied_inside_the_store(hybrid: HybridRetriever, filter: dict) -> None:
    backend = hybrid.dense
    kwargs = backend._dialect.filter_kwargs(parse(filter))
    assert kwargs, "this filter should be pushed down"
    found = backend.vectorstore.similarity_search("anything", k=len(IDS), **kwargs)
    assert {d.metadata["lorag_id"] for d in found} == expected(filter)


@pytest.mark.parametrize("filter", [None, *PUSHED], ids=str)
def test_the_lean_search_returns_what_pgvector_returns(hybrid: HybridRetriever, filter: dict | None) -> None:
    """lorag's one-query search by vector (text, metadata and distance only) gives PGVector's own hits and scores."""
    backend = hybrid.dense
    kwargs = backend._dialect.filter_kwargs(parse(filter)) if filter else {}
    vector = ConceptEmbeddings().embed_query("wolves hunt in the forest at night")
    lean = backend._dialect.scored_by_vector(vector, len(IDS), kwargs)
    own = [
        (doc, backend.vectorstore._select_relevance_score_fn()(distance))
        for doc, distance in backend.vectorstore.similarity_search_with_score_by_vector(vector, k=len(IDS), **kwargs)
    ]
    assert [(d.id, d.page_content, d.metadata) for d, _ in lean] == [(d.id, d.page_content, d.metadata) for d, _ in own]
    assert [score for _, score in lean] == pytest.approx([score for _, score in own], abs=1e-12)
    assert len(lean) == (len(IDS) if filter is None else len(expected(filter)))
    if filter is None:  # the scores of given documents, computed by the server, are the search's
        by_id = backend._dialect.stored_scores(vector, IDS)
        assert by_id == pytest.approx({d.metadata["lorag_id"]: score for d, score in own}, abs=1e-12)


LORAG_SIDE = [
    {"year": {"$ne": 2019}},  # keeps "berlin", which has no year
    {"$not": {"topic": "animals"}},
    {"$and": [{"topic": "animals"}, {"year": {"$nin": [2019]}}]},
]


@pytest.mark.parametrize("filter", PUSHED + LORAG_SIDE, ids=str)
def test_filters_hold_before_the_top_k_cut(hybrid: HybridRetriever, filter: dict) -> None:
    want = expected(filter)
    assert {h.id for h in hybrid.dense.search("capital city", k=len(IDS), filter=filter)} == want
    assert {h.id for h in hybrid.search("capital city", k=len(IDS), filter=filter)} == want
    top = hybrid.search("capital city", k=1, filter=filter)
    assert len(top) == 1 and top[0].id in want


def test_add_and_delete_stay_in_step(hybrid: HybridRetriever) -> None:
    hybrid.add(["Lyon is a city in France."], ids=["lyon"], metadatas=[{"topic": "geography"}])
    assert hybrid.dense.missing(["lyon"]) == []
    assert hybrid.search("Lyon", k=1)[0].component_ranks["dense"] is not None
    hybrid.delete(["lyon", "paris"])
    assert hybrid.dense.missing(["lyon", "paris", "wolf"]) == ["lyon", "paris"]
    assert {"lyon", "paris"}.isdisjoint(h.id for h in hybrid.search("city in France", k=len(IDS)))
    with pytest.raises(KeyError):
        hybrid.delete(["lyon"])  # unknown to lorag: refused before the store is touched
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
    assert hybrid.dense.missing(["lyon", "paris"]) == ["lyon"]  # the failed add left nothing in the store
    hybrid.add(["Lyon is a city in France."], ids=["lyon"])
    assert hybrid.search("Lyon", k=1)[0].id == "lyon"


def test_restart_and_reload(server: PostgresServer, collection: str, hybrid: HybridRetriever, tmp_path: Path) -> None:
    before = [(h.id, round(h.score, 6)) for h in hybrid.search("capital city", k=4)]
    hybrid.save(tmp_path / "lorag")
    server.stop()
    server.start()
    store = LangChainVectorStoreBackend(make_store(server, collection))
    loaded = HybridRetriever.load(tmp_path / "lorag", store=store)
    assert [(h.id, round(h.score, 6)) for h in loaded.search("capital city", k=4)] == before

    other = LangChainVectorStoreBackend(make_store(server, collection + "_other"))
    with pytest.raises(StorePairingError, match=f"collection {collection!r}"):
        HybridRetriever.load(tmp_path / "lorag", store=other)
    with pytest.raises(ValueError, match="store="):
        HybridRetriever.load(tmp_path / "lorag", ConceptEmbeddings())
    store.delete(["wolf"])  # behind lorag's back
    with pytest.raises(StorePairingError, match="lacks 1 of 6"):
        HybridRetriever.load(tmp_path / "lorag", store=store)


def test_collection_of_another_dimension_is_refused(server: PostgresServer, hybrid: HybridRetriever) -> None:
    collection = hybrid.dense.pairing()["collection"]
    assert hybrid.dense.pairing()["dimension"] == 8
    with pytest.raises(ValueError, match="holds 8-dimensional vectors but the store's embeddings give 4"):
        LangChainVectorStoreBackend(make_store(server, collection, ConceptEmbeddings(size=4)))


def test_only_the_lexical_side_ranks_the_exact_term_first(hybrid: HybridRetriever) -> None:
    hits = {h.id: h for h in hybrid.search("E4107 malfunction", k=len(IDS))}
    assert hits["e4107"].component_ranks["bm25"] == 1
    assert hits["guide"].component_ranks["dense"] == 1  # by meaning, the troubleshooting guide
    assert hits["e4107"].component_ranks["dense"] != 1
    assert next(iter(hits)) == "e4107"  # fused, the exact code wins


def test_lexical_only_candidates_get_the_stores_exact_dense_score(hybrid: HybridRetriever) -> None:
    """As with FAISS: documents outside the store's top are scored by the store, in one search restricted to them."""
    full = {h.id: h.score for h in hybrid.dense.search("E4107 malfunction", k=len(IDS))}
    scored = hybrid.dense.score_documents("E4107 malfunction", ["e4107", "wolf", "unknown"])
    assert scored == pytest.approx({"e4107": full["e4107"], "wolf": full["wolf"]}, abs=1e-6)
    narrow = HybridRetriever(hybrid.sparse, hybrid.dense, depth={"bm25": len(IDS), "dense": 1})
    (hit,) = narrow.search("E4107 malfunction", k=1)  # the store returns "guide" alone; BM25 only "e4107"
    assert hit.component_scores["dense"] == pytest.approx(full[hit.id], abs=1e-6)
    assert hit.component_scores["bm25"] is not None


# ------------------------------------------------------------------------ one round trip, texts from lorag's side
class TwoTrips(LangChainVectorStoreBackend):
    """The path every other store takes: a search that ships texts and metadata, then the BM25-only documents'
    scores in a second request."""

    def candidates_supported(self) -> bool:
        return False


def two_trip_twin(hybrid: HybridRetriever) -> HybridRetriever:
    """The same lorag side and store, searched the way it was before ``CandidateStore``."""
    return HybridRetriever(hybrid.sparse, TwoTrips(hybrid.dense.vectorstore), depth=hybrid.depth)


@contextlib.contextmanager
def statements(store: PGVector) -> Iterator[list[str]]:
    """The SQL statements sent to the server while the block runs (each one a round trip)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(store._engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store._engine, "before_cursor_execute", record)


QUERIES = ["wolves in packs", "capital city", "E4107 malfunction", "pump failure at night", "capital city wolves"]
#: Candidate depths: everything, and a narrow dense side, so BM25-only documents need the store's exact scores.
DEPTHS = [{"bm25": 200, "dense": 200}, {"bm25": 6, "dense": 1}, {"bm25": 2, "dense": 3}]
NOT_PUSHED_DEEP = {"$not": {"topic": {"$in": ["animals", "geography"]}}}  # the store's first 4 fail: fetch deeper


def store_only_documents(hybrid: HybridRetriever) -> str:
    """Documents the store holds and lorag does not: one added through the backend (with its ``lorag_id``), one
    written straight into the collection (no ``lorag_id``: its lorag id is its store id, returned)."""
    hybrid.dense.add(["Lyon is a city in France."], ids=["lyon"], metadatas=[{"topic": "geography", "year": 2022}])
    store = hybrid.dense.vectorstore
    raw = f"howl-{store.collection_name}"  # PGVector's ids are unique across collections
    store.add_texts(["Wolves howl at night."], metadatas=[{"topic": "animals", "year": 2024}], ids=[raw])
    return raw


@pytest.mark.parametrize("depth", DEPTHS, ids=str)
@pytest.mark.parametrize("filter", [None, *PUSHED, *LORAG_SIDE, NOT_PUSHED_DEEP], ids=str)
def test_one_round_trip_returns_what_two_did(hybrid: HybridRetriever, filter: dict | None, depth: dict) -> None:
    """Ids and scores in one statement, texts and metadata from lorag: the same hits, order, fused and component
    scores and ranks, texts and metadata as the search that ships them, including documents only the store holds."""
    raw = store_only_documents(hybrid)
    one = HybridRetriever(hybrid.sparse, hybrid.dense, depth=depth)
    two = two_trip_twin(one)
    assert isinstance(one.dense, CandidateStore) and one.dense.candidates_supported()
    for query in QUERIES:
        for k in (1, 3, len(IDS) + 2):
            assert one.search(query, k=k, filter=filter) == two.search(query, k=k, filter=filter), (query, k)
    wide = HybridRetriever(hybrid.sparse, hybrid.dense).search("wolves at night in the city", k=len(IDS) + 2)
    by_id = {h.id: h for h in wide}
    assert by_id["lyon"].text == "Lyon is a city in France."
    assert by_id["lyon"].metadata == {"topic": "geography", "year": 2022}
    assert by_id[raw].text == "Wolves howl at night."
    assert by_id[raw].metadata == {"topic": "animals", "year": 2024}
    assert by_id["wolf"].text == TEXTS["wolf"] and by_id["wolf"].metadata == METADATAS["wolf"]


@pytest.mark.parametrize("filter", [None, *PUSHED, *LORAG_SIDE], ids=str)
def test_a_hybrid_search_is_one_statement(hybrid: HybridRetriever, filter: dict | None) -> None:
    """Where lorag holds every candidate: its top ids and the BM25-only documents' scores in one request, no text
    (besides the small statement that keeps an HNSW index from returning fewer rows)."""
    for query in QUERIES:
        with statements(hybrid.dense.vectorstore) as sent:
            hybrid.search(query, k=3, filter=filter)
        searches = [statement for statement in sent if "hnsw.ef_search" not in statement]
        assert len(searches) == 1 and "document" not in searches[0], sent


def test_candidates_give_the_searchs_ranking_and_the_stored_scores(hybrid: HybridRetriever) -> None:
    """The backend's one-trip answer: ``search``'s ids and scores, ``score_documents``' scores; a store-only document
    comes with its text, lorag's come bare."""
    raw = store_only_documents(hybrid)
    backend = hybrid.dense
    query = "Lyon and Paris are cities"
    with statements(backend.vectorstore) as sent:
        found = backend.candidates(query, 4, score_ids=["wolf", "e4107", "paris"], held=hybrid.sparse.docs.metadata_of)
    assert "document" not in sent[0] and len(sent) > 1  # the ranking, then the text of the one lorag lacks
    searched = backend.search(query, k=4)
    assert list(found.ranking.items()) == [(h.id, h.score) for h in searched]
    assert found.scores == backend.score_documents(query, ["wolf", "e4107", "paris"])
    assert set(found.documents) == {"lyon", raw} & set(found.ranking)
    assert found.documents["lyon"].text == "Lyon is a city in France."


def test_stores_without_one_trip_candidates_keep_their_path() -> None:
    backend = LangChainVectorStoreBackend(InMemoryVectorStore(ConceptEmbeddings()))
    assert not backend.candidates_supported()
    hybrid = HybridRetriever(BM25Index(), backend)
    hybrid.add(list(TEXTS.values()), ids=IDS, metadatas=list(METADATAS.values()))
    hits = hybrid.search("E4107 malfunction", k=len(IDS))
    assert hits[0].id == "e4107" and all(h.component_scores["dense"] is not None for h in hits)


# ------------------------------------------------------------------------------------------- an HNSW index in Postgres
HNSW_DOCS = 300


def hnsw_store(server: PostgresServer, options: str = "") -> PGVector:
    """A PGVector collection alone in a new database, with an HNSW index that the planner must use (no sequential
    scans), over enough documents that lorag's 200 dense candidates exceed pgvector's default ``hnsw.ef_search``."""
    database = f"hnsw_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
    admin.dispose()
    url = f"{server.url.rsplit('/', 1)[0]}/{database}"
    store = PGVector(
        ConceptEmbeddings(),
        connection=url,
        collection_name="docs",
        use_jsonb=True,
        engine_args={"connect_args": {"options": f"-c enable_seqscan=off {options}".strip()}},
    )
    return store


def hnsw_hybrid(server: PostgresServer, options: str = "") -> HybridRetriever:
    store = hnsw_store(server, options)
    # distinct vectors (pgvector's HNSW keeps equal vectors as one element, which would return more rows)
    counts = [(i % 7 + 1, i // 7 % 7 + 1, i // 49 + 1) for i in range(HNSW_DOCS)]
    texts = [" ".join(["wolf"] * a + ["forest"] * b + ["city"] * c) + f" item{i}" for i, (a, b, c) in enumerate(counts)]
    retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(store))
    retriever.add(texts, ids=[f"d{i}" for i in range(HNSW_DOCS)])
    size = ConceptEmbeddings().size  # an HNSW index needs the column's dimension, which PGVector sets once a process
    with store.session_maker() as session:
        session.execute(text(f"ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector({size})"))
        session.execute(
            text("CREATE INDEX embedding_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)")
        )
        session.commit()
    return retriever


def test_an_hnsw_index_still_gives_every_candidate_asked_for(server: PostgresServer) -> None:
    """pgvector's HNSW scan stops at ``hnsw.ef_search`` rows (40 by default): lorag raises it to its depth for the
    search's transaction, so LIMIT 200 gets 200 rows, not 40 or so."""
    hybrid = hnsw_hybrid(server)
    store = hybrid.dense.vectorstore
    vector = ConceptEmbeddings().embed_query("wolves in the forest")
    with store.session_maker() as session:
        plan = session.execute(
            text("EXPLAIN SELECT id FROM langchain_pg_embedding ORDER BY embedding <=> CAST(:v AS vector) LIMIT 200"),
            {"v": str(vector)},
        ).all()
    assert "embedding_hnsw" in " ".join(row[0] for row in plan)  # the index is used
    assert len(store.similarity_search_by_vector(vector, k=200)) < 200  # PGVector's own search: the trap
    assert len(hybrid.dense.search("wolves in the forest", k=200)) == 200
    hits = hybrid.search("wolves in the forest", k=HNSW_DOCS)
    assert sum(h.component_ranks["dense"] is not None for h in hits) == HNSW_DOCS  # depth: at least k
    found = hybrid.dense.candidates("wolves in the forest", 200, held=hybrid.sparse.docs.metadata_of)
    assert len(found.ranking) == 200
    assert len(hybrid.dense._dialect.ranked_ids(vector, 250, {}, [])[0]) == 250


@pytest.mark.parametrize(("options", "k", "expected"), [("", 200, "200"), ("-c hnsw.ef_search=500", 200, "500"),
                                                        ("", 5000, "1000")])  # fmt: skip
def test_hnsw_ef_search_is_raised_never_lowered(server: PostgresServer, options: str, k: int, expected: str) -> None:
    """Raised for the search's transaction only: a larger setting of the user's stays, pgvector's maximum caps it."""
    dialect = LangChainVectorStoreBackend(hnsw_store(server, options))._dialect
    with dialect._ranking_session(k) as session:
        assert session.execute(text("SHOW hnsw.ef_search")).scalar() == expected
    with dialect.store.session_maker() as session:
        assert session.execute(text("SHOW hnsw.ef_search")).scalar() == ("500" if options else "40")

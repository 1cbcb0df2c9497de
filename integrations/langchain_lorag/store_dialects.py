"""How ``LangChainVectorStoreBackend`` talks to each kind of LangChain vector store: ids, filters, dimension, and the
store's own hybrid search where it has one.

- langchain-postgres ``PGVector``: JSONB filters pushed down; ids prefixed by the collection; its top ids and the
  scores of given documents in one statement (``ranked_ids``).
- langchain-postgres ``PGVectorStore``: one table per store; string filters pushed down; with a ``HybridSearchConfig``
  it fuses Postgres full-text search (``ts_rank_cd`` over ``plainto_tsquery``) with its vectors.
- langchain-qdrant ``QdrantVectorStore``: payload filters pushed down; in ``RetrievalMode.HYBRID`` it fuses sparse and
  dense search (RRF by default) in one query.
- anything else: no filter pushed down, lorag's ids as the store's, no hybrid search of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

from lorag.retrieval import store_filters
from lorag.retrieval.filters import Filter

#: Metadata key holding lorag's document id inside the store (stores differ in whether they return ``Document.id``).
ID_KEY = "lorag_id"
#: Namespace of the UUIDs that stand for lorag ids in stores that take only UUIDs or integers (Qdrant).
ID_NAMESPACE = uuid.UUID("5b0d2a4e-8f1c-4c52-9a53-6c0f4a1e2b7d")

Scored = list[tuple[Any, float]]
#: pgvector's largest ``hnsw.ef_search`` (it accepts 1 to 1000).
HNSW_EF_SEARCH_MAX = 1000
#: Raise pgvector's ``hnsw.ef_search`` to ``:k`` for the current transaction, never lowering a larger setting.
RAISE_EF_SEARCH = (
    "SELECT set_config('hnsw.ef_search', greatest(coalesce(nullif(current_setting('hnsw.ef_search', true), '')::int, "
    "0), :k)::text, true)"
)
#: A store's top documents as (its id for the document, the lorag id in its metadata or ``None``, relevance score).
Ranked = list[tuple[str, Any, float]]


class _Dialect:
    """How lorag talks to one kind of store; this generic one pushes no filter down and keeps lorag's ids."""

    def __init__(self, vectorstore: Any) -> None:
        self.store = vectorstore

    def store_id(self, doc_id: str) -> str:
        return doc_id

    def filter_kwargs(self, tree: Filter) -> dict[str, Any]:
        return {}

    def delete(self, store_ids: list[str]) -> None:
        self.store.delete(ids=store_ids)

    def collection(self) -> str | None:
        return getattr(self.store, "collection_name", None)

    def dimension(self) -> int | None:
        """The dimension of the vectors the collection already holds (``None``: empty, or the store cannot say)."""
        return None

    #: Whether the store searches by a query vector (``scored_by_vector``): lorag then embeds each query once
    #: and can ask the store for the scores of given documents (``ids_filter_kwargs``).
    by_vector = False

    def scored_by_vector(self, vector: list[float], k: int, kwargs: dict[str, Any]) -> Scored:
        """Vector-only results for a query vector, with the store's relevance scores (higher is better)."""
        found = self.store.similarity_search_with_score_by_vector(vector, k=k, **kwargs)
        relevance = self.store._select_relevance_score_fn()
        return [(doc, relevance(score)) for doc, score in found]

    def ids_filter_kwargs(self, doc_ids: list[str]) -> dict[str, Any] | None:
        """Search arguments that keep only these documents (``None``: the store cannot filter by id)."""
        return None

    def stored_scores(self, vector: list[float], doc_ids: list[str]) -> dict[str, float] | None:
        """Relevance scores of these documents computed from their stored vectors, fetched by id: cheaper than a
        search restricted to them (``None``: the store cannot, use ``ids_filter_kwargs``)."""
        return None

    def ranks_ids(self) -> bool:
        """Whether ``ranked_ids`` works for this store."""
        return False

    def ranked_ids(
        self, vector: list[float], k: int, kwargs: dict[str, Any], store_ids: list[str]
    ) -> tuple[Ranked, dict[str, float]]:
        """In one round trip, without texts or metadata: the top ``k`` by vector (``kwargs`` as for
        ``scored_by_vector``), best first, and the relevance scores of the documents with ``store_ids`` (by store id;
        those the store holds)."""
        raise NotImplementedError(f"{type(self.store).__name__} cannot rank ids with scores in one round trip")

    def hybrid_problem(self) -> str | None:
        """``None`` when the store fuses lexical and vector search itself, else why it cannot."""
        return f"{type(self.store).__name__} has no lexical search of its own that lorag knows how to call"

    def hybrid_scored(self, query: str, k: int, depth: int, kwargs: dict[str, Any]) -> Scored:
        """The store's fused top ``k`` (at least; ``depth`` candidates per ranking), best first."""
        raise NotImplementedError(self.hybrid_problem())


def _cosines(vector: list[float], stored: dict[str, Any]) -> dict[str, float]:
    """Cosine similarity of ``vector`` with each stored vector."""
    import numpy as np

    if not stored:
        return {}
    query = np.asarray(vector, dtype=np.float64)
    matrix = np.asarray(list(stored.values()), dtype=np.float64)
    sims = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-12)
    return dict(zip(stored, sims.tolist(), strict=True))


class _PGVectorDialect(_Dialect):
    """langchain-postgres ``PGVector``: JSONB filters. Its ids are unique across the whole table, not per collection
    (an upsert would move another collection's row), so lorag's ids go in as ``collection:id``."""

    by_vector = True

    def scored_by_vector(self, vector: list[float], k: int, kwargs: dict[str, Any]) -> Scored:
        """PGVector's own search loads each hit as an ORM row, its embedding parsed too, after a separate query for
        the collection; lorag reads text, metadata and distance only, in one query (the same rows, order and
        scores: its filter clause and distance are PGVector's; ``_nearest``)."""
        from langchain_core.documents import Document

        store = self.store
        if not store.use_jsonb:
            return super().scored_by_vector(vector, k, kwargs)
        table = store.EmbeddingStore
        distance = store.distance_strategy(vector).label("distance")
        query = self._nearest(distance, k, kwargs, table.id, table.document, table.cmetadata)
        with self._ranking_session(k) as session:
            rows = session.execute(query).all()
        relevance = store._select_relevance_score_fn()
        return [(Document(id=row[0], page_content=row[1], metadata=row[2]), relevance(row[3])) for row in rows]

    def ranks_ids(self) -> bool:
        return bool(self.store.use_jsonb)

    def ranked_ids(
        self, vector: list[float], k: int, kwargs: dict[str, Any], store_ids: list[str]
    ) -> tuple[Ranked, dict[str, float]]:
        """One statement: the lean search's top ``k`` (store id, the ``lorag_id`` value of its metadata, distance)
        UNION ALL the distances of ``store_ids``, so no texts and no second round trip. Same filter clause, distance
        and relevance as ``scored_by_vector``, hence the same scores; the query vector is bound once, and the
        ``lorag_id`` is read outside the sorted scan, for the top ``k`` rows only."""
        from sqlalchemy import false, func, null, select, true, union_all

        store = self.store
        table = store.EmbeddingStore
        distance = store.distance_strategy(vector).label("distance")  # one expression: the vector is bound once
        scan = self._nearest(distance, k, kwargs, table.id, table.cmetadata).subquery()
        query = select(true().label("top"), scan.c.id, scan.c.cmetadata[ID_KEY], scan.c.distance)
        if store_ids:
            given = select(false(), table.id, null(), distance).where(table.id == func.any(store_ids))
            query = union_all(query, given)  # type: ignore[assignment]
        with self._ranking_session(k) as session:
            rows = session.execute(query).all()
        relevance = store._select_relevance_score_fn()
        # the scan's order by distance, kept should the server interleave the two parts (ties keep its order)
        ranked = sorted((row for row in rows if row[0]), key=lambda row: row[3])
        return (
            [(row[1], row[2], relevance(row[3])) for row in ranked],
            {row[1]: relevance(row[3]) for row in rows if not row[0]},
        )

    def _nearest(self, distance: Any, k: int, kwargs: dict[str, Any], *columns: Any) -> Any:
        """``columns`` and ``distance`` (PGVector's, for a query vector) of the collection's top ``k``, PGVector's
        filter clause applied. The collection is matched by a scalar subquery on its name, not a join: the planner
        then knows it scans one collection's rows and walks an HNSW index in distance order where there is one (with
        the join it guessed a handful of rows and sorted them all; PGVector's own search looks the collection's id up
        in a query of its own first)."""
        from sqlalchemy import select

        store = self.store
        table, collections = store.EmbeddingStore, store.CollectionStore
        collection = select(collections.uuid).where(collections.name == store.collection_name).scalar_subquery()
        where = [table.collection_id == collection]
        if kwargs.get("filter") and (clause := store._create_filter_clause(kwargs["filter"])) is not None:
            where.append(clause)
        return select(*columns, distance).where(*where).order_by(distance).limit(k)

    @contextlib.contextmanager
    def _ranking_session(self, k: int) -> Iterator[Any]:
        """A session for a top ``k`` by distance. Over an HNSW index pgvector returns at most ``hnsw.ef_search`` rows
        (40 by default) whatever the ``LIMIT``, so lorag's 200 candidates would silently be 40 or so: the setting is
        raised to ``k`` (at most pgvector's 1000, never lowered) for this transaction only, in one small statement
        before the search. Without an HNSW index it changes nothing. A filter still applies after the index scan
        (pgvector before 0.8 has no iterative scans), so a selective one can leave fewer rows than asked for."""
        from sqlalchemy import text

        with self.store.session_maker() as session:
            session.execute(text(RAISE_EF_SEARCH), {"k": min(k, HNSW_EF_SEARCH_MAX)})
            yield session

    def ids_filter_kwargs(self, doc_ids: list[str]) -> dict[str, Any] | None:
        return {"filter": {ID_KEY: {"$in": doc_ids}}}

    def stored_scores(self, vector: list[float], doc_ids: list[str]) -> dict[str, float] | None:
        """The server computes the distances (PGVector's own distance expression), so no vector is shipped or
        parsed."""
        from sqlalchemy import select

        by_store_id = {self.store_id(i): i for i in doc_ids}
        table = self.store.EmbeddingStore
        distance = self.store.distance_strategy(vector)
        with self.store.session_maker() as session:
            rows = session.execute(select(table.id, distance).where(table.id.in_(list(by_store_id)))).all()
        relevance = self.store._select_relevance_score_fn()
        return {by_store_id[row[0]]: relevance(row[1]) for row in rows}

    def store_id(self, doc_id: str) -> str:
        return f"{self.store.collection_name}:{doc_id}"

    def filter_kwargs(self, tree: Filter) -> dict[str, Any]:
        pushed = store_filters.pushable(tree, key_ok=str.isidentifier)
        return {} if pushed is None else {"filter": store_filters.to_mongo(pushed)}

    def delete(self, store_ids: list[str]) -> None:
        self.store.delete(ids=store_ids, collection_only=True)

    def dimension(self) -> int | None:
        from sqlalchemy import func, select

        table = self.store.EmbeddingStore
        with self.store.session_maker() as session:
            collection = self.store.get_collection(session)
            if collection is None:
                return None
            query = select(func.vector_dims(table.embedding)).where(table.collection_id == collection.uuid).limit(1)
            return session.execute(query).scalar()


class _PGVectorStoreDialect(_Dialect):
    """langchain-postgres ``PGVectorStore`` (one table per store, ids in a UUID column, so lorag ids map to UUID5).

    Filters on string values are pushed down; numbers stay on lorag's side, because the store casts a JSON value per
    row (``(metadata->>'year')::INTEGER``) and one row holding text under that key would fail the whole query.
    The store's dense search is asked with ``hybrid_search_config=None``, so it stays vector-only even when the store
    has a hybrid config; its hybrid search gets a copy of that config per query, because the store writes the first
    query into a shared config's ``fts_query`` and would reuse it for every later query.
    """

    by_vector = True

    def __init__(self, vectorstore: Any) -> None:
        super().__init__(vectorstore)
        self.inner = vectorstore._PGVectorStore__vs  # the AsyncPGVectorStore: table, columns and hybrid config

    def store_id(self, doc_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, doc_id))

    def filter_kwargs(self, tree: Filter) -> dict[str, Any]:
        pushed = store_filters.pushable(tree, key_ok=str.isidentifier, value_ok=lambda v: isinstance(v, str))
        return {} if pushed is None else {"filter": store_filters.to_mongo(pushed)}

    def collection(self) -> str | None:
        return f"{self.inner.schema_name}.{self.inner.table_name}"

    def dimension(self) -> int | None:
        """The vector column's declared dimension (pgvector keeps it as the column's type modifier)."""
        from sqlalchemy import text

        query = text(
            "SELECT a.atttypmod FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid "
            "JOIN pg_namespace n ON c.relnamespace = n.oid "
            "WHERE n.nspname = :schema AND c.relname = :table AND a.attname = :column"
        )
        inner = self.inner
        params = {"schema": inner.schema_name, "table": inner.table_name, "column": inner.embedding_column}

        async def read() -> Any:
            async with self.inner.engine.connect() as conn:
                return (await conn.execute(query, params)).scalar()

        size = self.store._engine._run_as_sync(read())
        return int(size) if size is not None and size > 0 else None

    def scored_by_vector(self, vector: list[float], k: int, kwargs: dict[str, Any]) -> Scored:
        return super().scored_by_vector(vector, k, {**kwargs, "hybrid_search_config": None})

    def ids_filter_kwargs(self, doc_ids: list[str]) -> dict[str, Any] | None:
        return {"filter": {ID_KEY: {"$in": doc_ids}}}

    def hybrid_problem(self) -> str | None:
        if self.inner.hybrid_search_config is None:
            return "this PGVectorStore has no hybrid_search_config (create it with HybridSearchConfig(...))"
        return None

    def hybrid_scored(self, query: str, k: int, depth: int, kwargs: dict[str, Any]) -> Scored:
        config = self.inner.hybrid_search_config
        if config is None:
            raise NotImplementedError(self.hybrid_problem())
        per_query = dataclasses.replace(
            config,
            fts_query=query,
            primary_top_k=max(k, depth),
            secondary_top_k=max(k, depth),
            fusion_function_parameters=dict(config.fusion_function_parameters),
        )
        found: Scored = self.store.similarity_search_with_score(query, k=k, hybrid_search_config=per_query, **kwargs)
        return found


class _QdrantDialect(_Dialect):
    """langchain-qdrant ``QdrantVectorStore``: payload filters; point ids must be UUIDs, so lorag ids map to UUID5.
    Searching by vector uses its dense vectors whatever its retrieval mode."""

    by_vector = True

    def store_id(self, doc_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, doc_id))

    def filter_kwargs(self, tree: Filter) -> dict[str, Any]:
        from qdrant_client import models

        pushed = store_filters.pushable(tree)
        if pushed is None:
            return {}
        prefix = f"{self.store.metadata_payload_key}."
        return {"filter": models.Filter.model_validate(store_filters.to_qdrant(pushed, prefix))}

    def dimension(self) -> int | None:
        vectors = self.store.client.get_collection(self.store.collection_name).config.params.vectors
        params = vectors.get(self.store.vector_name) if isinstance(vectors, dict) else vectors
        return None if params is None else int(params.size)

    def ids_filter_kwargs(self, doc_ids: list[str]) -> dict[str, Any] | None:
        from qdrant_client import models

        has_id: list[models.ExtendedPointId] = [self.store_id(i) for i in doc_ids]
        return {"filter": models.Filter(must=[models.HasIdCondition(has_id=has_id)])}

    def stored_scores(self, vector: list[float], doc_ids: list[str]) -> dict[str, float] | None:
        from qdrant_client import models

        if self.store.distance != models.Distance.COSINE:
            return None
        by_store_id = {self.store_id(i): i for i in doc_ids}
        name = self.store.vector_name
        points = self.store.client.retrieve(
            self.store.collection_name, list(by_store_id), with_payload=False, with_vectors=[name] if name else True
        )
        stored = {
            by_store_id[str(p.id)]: p.vector.get(name) if isinstance(p.vector, dict) else p.vector for p in points
        }
        relevance = self.store._select_relevance_score_fn()
        return {doc_id: relevance(cos) for doc_id, cos in _cosines(vector, stored).items()}  # Qdrant's cosine score

    def hybrid_problem(self) -> str | None:
        from langchain_qdrant import RetrievalMode
        from qdrant_client import models

        mode = self.store.retrieval_mode
        if mode != RetrievalMode.HYBRID:
            return (
                f"this QdrantVectorStore is in retrieval_mode={mode.value!r}; create it with "
                "retrieval_mode=RetrievalMode.HYBRID and a sparse_embedding (e.g. langchain_lorag's "
                "LoragSparseEmbeddings, lorag's BM25 as sparse vectors)"
            )
        from langchain_lorag.sparse_embeddings import LoragSparseEmbeddings

        if isinstance(self.store.sparse_embeddings, LoragSparseEmbeddings):
            config = self.store.client.get_collection(self.store.collection_name).config.params
            sparse = (config.sparse_vectors or {}).get(self.store.sparse_vector_name)
            if sparse is None or sparse.modifier != models.Modifier.IDF:
                return (
                    f"collection {self.store.collection_name!r} does not weight its sparse vectors by IDF, which "
                    "LoragSparseEmbeddings' BM25 term weights need: create it with "
                    "sparse_vectors_config={name: SparseVectorParams(modifier=Modifier.IDF)}"
                )
        return None

    def hybrid_scored(self, query: str, k: int, depth: int, kwargs: dict[str, Any]) -> Scored:
        """Qdrant prefetches as many candidates per ranking as results asked for, so ask for ``depth`` and cut: RRF
        over the top ``depth`` of each ranking, whose first ``k`` are the answer."""
        from langchain_qdrant import RetrievalMode

        if self.store.retrieval_mode != RetrievalMode.HYBRID:
            raise NotImplementedError(self.hybrid_problem())
        found: Scored = self.store.similarity_search_with_score(query, k=max(k, depth), **kwargs)
        return found


DIALECTS: dict[str, type[_Dialect]] = {
    "langchain_postgres.PGVector": _PGVectorDialect,
    "langchain_postgres.PGVectorStore": _PGVectorStoreDialect,
    "langchain_qdrant.QdrantVectorStore": _QdrantDialect,
}


def dialect_for(kind: str, vectorstore: Any) -> _Dialect:
    """The dialect of a store kind (``store_kind``'s ``package.Class``), the generic one for unknown kinds."""
    return DIALECTS.get(kind, _Dialect)(vectorstore)

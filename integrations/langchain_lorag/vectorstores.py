"""``LangChainVectorStoreBackend``: any LangChain ``VectorStore`` as the dense side of ``lorag.retrieval``.

Users who outgrow one machine keep lorag's BM25 and fusion over Qdrant, pgvector, Milvus, Elasticsearch... through
LangChain's own integrations. Scores come from ``similarity_search_with_relevance_scores`` (higher is better for every
store that defines it); a store without a relevance function gives its raw ``similarity_search_with_score`` scores,
taken as similarities unless ``distance=True`` (then negated, so higher is still better).

Filters: for langchain-postgres's ``PGVector`` (JSONB) and langchain-qdrant's ``QdrantVectorStore`` (payload filters)
the part of lorag's filter the store can evaluate is pushed into its search (``lorag.retrieval.store_filters``); for
every store, lorag's whole filter is then applied to what the store returns, fetching deeper until ``k`` documents pass
or the store runs out, so the filter always holds before the top-k cut.

Store-native hybrid: ``PGVectorStore`` with a ``HybridSearchConfig`` and ``QdrantVectorStore`` in
``RetrievalMode.HYBRID`` fuse lexical and vector search themselves; ``hybrid_search`` asks them to (what
``HybridRetriever(fusion="store")`` calls), with lorag's filter holding as above. Per-store details live in
``langchain_lorag.store_dialects``.

Inside ``HybridRetriever`` (``candidates``, for ``PGVector``): the store's top ids and scores and the scores of BM25's
other candidates come in one statement, with no text or metadata for documents lorag holds (it has them already).

In step with lorag: an add that fails is undone in the store (a ``StoreSyncError`` names the ids when even that
fails); ``pairing()`` and ``missing()`` let ``HybridRetriever.save`` / ``load(store=...)`` refuse another store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from langchain_lorag.store_dialects import ID_KEY, ID_NAMESPACE, Ranked, Scored, dialect_for
from lorag.retrieval.documents import MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.filters import Filter, matches, parse
from lorag.retrieval.stores import HeldMetadata, StoreCandidates, StoreSyncError

__all__ = ["ID_KEY", "ID_NAMESPACE", "LangChainEmbedder", "LangChainVectorStoreBackend", "store_kind"]


def store_kind(vectorstore: VectorStore) -> str:
    """The store's class with its top-level package, e.g. ``langchain_postgres.PGVector``."""
    cls = type(vectorstore)
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


class LangChainVectorStoreBackend:
    """Wrap a LangChain ``VectorStore`` (it embeds with its own ``Embeddings``) as a lorag ``DenseBackend``.

    Args:
        vectorstore: any LangChain vector store; ``PGVector`` and ``QdrantVectorStore`` also get filters pushed down.
        distance: the store's raw scores are distances (lower is better); only used when it has no relevance function.
        hybrid_kwargs: extra arguments for the store's own hybrid search, e.g.
            ``{"hybrid_fusion": models.FusionQuery(fusion=models.Fusion.DBSF)}`` for Qdrant.

    Raises:
        ValueError: the collection already holds vectors of another dimension than the store's embeddings give.
    """

    def __init__(
        self, vectorstore: VectorStore, *, distance: bool = False, hybrid_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.vectorstore = vectorstore
        self.distance = distance
        self.hybrid_kwargs = dict(hybrid_kwargs or {})
        self.kind = store_kind(vectorstore)
        self._dialect = dialect_for(self.kind, vectorstore)
        self._last_query: tuple[str, list[float]] | None = None
        self.dimension = self._check_dimension()

    def _check_dimension(self) -> int | None:
        try:
            embeddings = self.vectorstore.embeddings
        except (AttributeError, NotImplementedError, ValueError):  # stores that embed server-side
            embeddings = None
        given = len(embeddings.embed_query("dimension probe")) if embeddings is not None else None
        held = self._dialect.dimension()
        if given is not None and held is not None and given != held:
            raise ValueError(
                f"{self.kind} collection {self._dialect.collection()!r} holds {held}-dimensional vectors but the "
                f"store's embeddings give {given}: use the embeddings it was built with, or another collection"
            )
        return held if held is not None else given

    def pairing(self) -> dict[str, Any]:
        """Which store and collection this is (saved with a ``HybridRetriever`` and checked when it is loaded)."""
        return {"store": self.kind, "collection": self._dialect.collection(), "dimension": self.dimension}

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the store does not hold."""
        found = self.vectorstore.get_by_ids([self._dialect.store_id(i) for i in ids])
        held = {str(doc.metadata.get(ID_KEY, doc.id)) for doc in found}
        return [i for i in ids if i not in held]

    def _query_vector(self, query: str) -> list[float]:
        """The store's embedding of ``query``, kept for the last query: a hybrid search asks twice (its top
        documents, then the scores of the lexical side's other candidates)."""
        last = self._last_query
        if last is not None and last[0] == query:
            return last[1]
        vector = list(self.vectorstore.embeddings.embed_query(query))  # type: ignore[union-attr]
        self._last_query = (query, vector)
        return vector

    def _scored(self, query: str, k: int, kwargs: dict[str, Any]) -> Scored:
        if self._dialect.by_vector:
            return self._dialect.scored_by_vector(self._query_vector(query), k, kwargs)
        try:
            return self.vectorstore.similarity_search_with_relevance_scores(query, k=k, **kwargs)
        except NotImplementedError:
            found = self.vectorstore.similarity_search_with_score(query, k=k, **kwargs)
            return [(doc, -score if self.distance else score) for doc, score in found]

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add documents (the store upserts by id); a failed add is undone in the store before the error is raised."""
        if ids is None:
            raise ValueError("ids are required: the hybrid retriever matches BM25 and vector-store documents by id")
        metas = [{**dict(m or {}), ID_KEY: i} for m, i in zip(metadatas or [None] * len(texts), ids, strict=True)]
        store_ids = [self._dialect.store_id(i) for i in ids]
        try:
            self.vectorstore.add_texts(list(texts), metadatas=metas, ids=store_ids)
        except Exception as err:
            try:
                self._dialect.delete(store_ids)
            except Exception as undo_err:
                raise StoreSyncError(
                    f"adding {len(ids)} documents to {self.kind} failed ({err}) and undoing it failed too ({undo_err})",
                    ids,
                    "lorag's side does not hold them; once the store answers, remove them there with "
                    "retriever.dense.delete(error.ids), or add the same batch again",
                ) from err
            raise
        return list(ids)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id; a store failure is a ``StoreSyncError`` (the store may have deleted some)."""
        try:
            self._dialect.delete([self._dialect.store_id(i) for i in ids])
        except Exception as err:
            raise StoreSyncError(
                f"deleting {len(ids)} documents from {self.kind} failed ({err}); it may still hold some of them",
                ids,
                "lorag's side still holds them all: run retriever.delete(error.ids) again once the store answers",
            ) from err

    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        """Vector search: the top ``k`` by the store's relevance score, ``filter`` holding before the cut."""
        return self._filtered(lambda fetch, kwargs: self._scored(query, fetch, kwargs), query, k, filter)

    def score_documents(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """The store's relevance score for ``query`` of each of ``ids`` it holds: from their stored vectors, fetched by
        id (PGVector, Qdrant, cosine), else by one search restricted to them (empty for a store lorag cannot filter
        by id). ``HybridRetriever`` fills in the dense scores of documents only
        its lexical side returned, as it does with FAISS, instead of treating them as the worst candidate."""
        wanted = set(ids)
        if not wanted or not self._dialect.by_vector:
            return {}
        stored = self._dialect.stored_scores(self._query_vector(query), list(wanted))
        if stored is not None:
            return stored
        kwargs = self._dialect.ids_filter_kwargs(list(wanted))
        if kwargs is None:
            return {}
        found = self._scored(query, len(wanted), kwargs)
        scores = {str(doc.metadata.get(ID_KEY, doc.id)): float(score) for doc, score in found}
        return {doc_id: score for doc_id, score in scores.items() if doc_id in wanted}

    def candidates_supported(self) -> bool:
        """Whether ``candidates`` works for this store (PGVector with JSONB metadata)."""
        return self._dialect.ranks_ids()

    def candidates(
        self,
        query: str,
        k: int,
        filter: MetadataFilter | None = None,
        *,
        score_ids: Sequence[str] = (),
        held: HeldMetadata,
    ) -> StoreCandidates:
        """``search``'s top ``k`` (ids and scores) and ``score_documents``' scores of ``score_ids``, in one round trip.

        Text and metadata cross the wire only for ranked documents ``held`` (lorag's side) lacks. The filter is pushed
        down as in ``search`` and checked on lorag's metadata of the documents it holds (the metadata it added to the
        store, and what its hits report), fetching deeper until ``k`` pass or the store runs out.
        """
        check_query(query)
        k = check_k(k)
        tree = parse(filter) if filter else None
        kwargs = self._dialect.filter_kwargs(tree) if tree is not None else {}
        vector = self._query_vector(query)
        by_store_id = {self._dialect.store_id(i): i for i in score_ids}
        fetch = k if tree is None else 4 * k
        while True:
            top, given = self._dialect.ranked_ids(vector, fetch, kwargs, list(by_store_id))
            ranking, documents = self._passing(top, k, tree, held)
            if len(ranking) == k or len(top) < fetch:  # enough, or the store has no more documents
                scores = {by_store_id[store_id]: score for store_id, score in given.items() if store_id in by_store_id}
                return StoreCandidates(ranking, scores, documents)
            fetch *= 4

    def _passing(
        self, top: Ranked, k: int, tree: Filter | None, held: HeldMetadata
    ) -> tuple[dict[str, float], dict[str, SearchHit]]:
        """The first ``k`` distinct ids of ``top`` that pass ``tree``, as ``_filtered`` keeps them, and hits (fetched
        by id) for those lorag does not hold."""
        ranked = [(store_id, str(lorag_id or store_id), score) for store_id, lorag_id, score in top]
        lacking = [store_id for store_id, doc_id, _ in ranked if held(doc_id) is None]
        fetched = {doc.id: doc for doc in self.vectorstore.get_by_ids(lacking)} if lacking else {}
        ranking: dict[str, float] = {}
        documents: dict[str, SearchHit] = {}
        for store_id, doc_id, score in ranked:
            meta = held(doc_id)
            doc = None
            if meta is None:
                doc = fetched.get(store_id)
                if doc is None:  # deleted from the store since it was ranked
                    continue
                meta = {key: value for key, value in doc.metadata.items() if key != ID_KEY}
            if doc_id in ranking or (tree is not None and not matches(meta, tree)):
                continue
            ranking[doc_id] = float(score)
            if doc is not None:
                documents[doc_id] = SearchHit(doc_id, float(score), len(ranking), doc.page_content, dict(meta))
            if len(ranking) == k:
                break
        return ranking, documents

    def native_hybrid_problem(self) -> str | None:
        """``None`` when the store fuses lexical and vector search itself, else why it cannot."""
        return self._dialect.hybrid_problem()

    def hybrid_search(
        self, query: str, k: int = 10, filter: MetadataFilter | None = None, *, depth: int = 200
    ) -> list[SearchHit]:
        """The store's own lexical + vector fusion: its top ``k`` (``depth`` candidates per ranking), ``filter``
        holding before the cut; scores are the store's fused scores."""

        def fetch(n: int, kwargs: dict[str, Any]) -> Scored:
            return self._dialect.hybrid_scored(query, n, depth, {**self.hybrid_kwargs, **kwargs})

        return self._filtered(fetch, query, k, filter)

    def _filtered(
        self,
        fetch_scored: Callable[[int, dict[str, Any]], Scored],
        query: str,
        k: int,
        filter: MetadataFilter | None,
    ) -> list[SearchHit]:
        """Push what the store can of ``filter`` into ``fetch_scored(n, kwargs)``, check lorag's whole filter on
        what comes back, and fetch deeper until ``k`` documents pass or the store runs out."""
        check_query(query)
        k = check_k(k)
        if k == 0:
            return []
        tree = parse(filter) if filter else None  # checked and parsed once, not per returned document
        kwargs = self._dialect.filter_kwargs(tree) if tree is not None else {}
        fetch = k if tree is None else 4 * k
        while True:
            found = fetch_scored(fetch, kwargs)
            hits: list[SearchHit] = []
            seen: set[str] = set()
            for doc, score in found:
                meta = dict(doc.metadata)
                doc_id = str(meta.pop(ID_KEY, None) or doc.id)
                if doc_id in seen or (tree is not None and not matches(meta, tree)):
                    continue
                seen.add(doc_id)
                hits.append(SearchHit(doc_id, float(score), len(hits) + 1, doc.page_content, meta))
                if len(hits) == k:
                    return hits
            if len(found) < fetch:  # the store has no more documents
                return hits
            fetch *= 4


class LangChainEmbedder:
    """A LangChain ``Embeddings`` seen as a lorag ``TextEmbedder`` (numpy arrays, a dimension and settings)."""

    def __init__(self, embeddings: Embeddings) -> None:
        import numpy as np

        self._np = np
        self.embeddings = embeddings
        self.dimension = len(embeddings.embed_query("dimension probe"))

    def embed_documents(self, texts: Sequence[str]) -> Any:
        return self._np.asarray(self.embeddings.embed_documents(list(texts)), dtype=self._np.float32)

    def embed_query(self, text: str) -> Any:
        return self._np.asarray(self.embeddings.embed_query(text), dtype=self._np.float32)

    def settings(self) -> dict[str, Any]:
        params = self.embeddings.model_dump() if hasattr(self.embeddings, "model_dump") else {}
        safe = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None}
        return {"langchain_embeddings": type(self.embeddings).__name__, "dimension": self.dimension, **safe}

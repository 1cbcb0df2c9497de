"""``LangChainVectorStoreBackend``: any LangChain ``VectorStore`` as the dense side of ``lorag.retrieval``.

Users who outgrow one machine keep lorag's BM25 and fusion over Qdrant, Milvus, pgvector, Elasticsearch... through
LangChain's own integrations. Scores come from ``similarity_search_with_relevance_scores`` (higher is better for every
store that defines it); a store without a relevance function gives its raw ``similarity_search_with_score`` scores,
taken as similarities unless ``distance=True`` (then negated, so higher is still better). Stores filter metadata in
their own dialects, so lorag's filter (``lorag.retrieval.filters``) is applied to what the store returns, fetching
deeper until ``k`` documents pass or the store runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from lorag.retrieval.documents import MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.filters import matches, parse

#: Metadata key holding lorag's document id inside the store (stores differ in whether they return ``Document.id``).
ID_KEY = "lorag_id"


class LangChainVectorStoreBackend:
    """Wrap a LangChain ``VectorStore`` (it embeds with its own ``Embeddings``) as a lorag ``DenseBackend``.

    Args:
        vectorstore: any LangChain vector store.
        distance: the store's raw scores are distances (lower is better); only used when it has no relevance function.
    """

    def __init__(self, vectorstore: VectorStore, *, distance: bool = False) -> None:
        self.vectorstore = vectorstore
        self.distance = distance

    def _scored(self, query: str, k: int) -> list[tuple[Any, float]]:
        try:
            return self.vectorstore.similarity_search_with_relevance_scores(query, k=k)
        except NotImplementedError:
            found = self.vectorstore.similarity_search_with_score(query, k=k)
            return [(doc, -score if self.distance else score) for doc, score in found]

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        if ids is None:
            raise ValueError("ids are required: the hybrid retriever matches BM25 and vector-store documents by id")
        metas = [{**dict(m or {}), ID_KEY: i} for m, i in zip(metadatas or [None] * len(texts), ids, strict=True)]
        self.vectorstore.add_texts(list(texts), metadatas=metas, ids=list(ids))
        return list(ids)

    def delete(self, ids: Sequence[str]) -> None:
        self.vectorstore.delete(ids=list(ids))

    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        check_query(query)
        k = check_k(k)
        if k == 0:
            return []
        tree = parse(filter) if filter else None  # checked and parsed once, not per returned document
        fetch = k if tree is None else 4 * k
        while True:
            found = self._scored(query, fetch)
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

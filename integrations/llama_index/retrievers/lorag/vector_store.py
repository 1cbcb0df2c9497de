"""``LlamaIndexVectorStoreBackend``: any LlamaIndex vector store as the dense side of ``lorag.retrieval``.

LlamaIndex stores hold vectors the caller computed, so the backend embeds with a LlamaIndex ``BaseEmbedding``. The
store receives the indexed nodes themselves (with ``ref_doc_id`` and relationships, see ``nodes``). lorag's filter
becomes ``MetadataFilters`` (``filters.to_metadata_filters``) that the store applies inside its search, before its
top-k cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.vector_stores.types import BasePydanticVectorStore, VectorStoreQuery

from llama_index.retrievers.lorag.filters import to_metadata_filters
from llama_index.retrievers.lorag.nodes import restore_node
from lorag.retrieval.documents import SearchHit, check_k, check_query


class LlamaIndexVectorStoreBackend:
    """Wrap a LlamaIndex vector store and an embedding model as a lorag ``DenseBackend``."""

    def __init__(self, vector_store: BasePydanticVectorStore, embed_model: BaseEmbedding) -> None:
        self.vector_store = vector_store
        self.embed_model = embed_model

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        if ids is None:
            raise ValueError("ids are required: the hybrid retriever matches BM25 and vector-store documents by id")
        embeddings = self.embed_model.get_text_embedding_batch(list(texts))
        metas = metadatas or [None] * len(texts)
        nodes = [restore_node(i, t, m or {}) for i, t, m in zip(ids, texts, metas, strict=True)]
        for node, embedding in zip(nodes, embeddings, strict=True):
            node.embedding = embedding
        self.vector_store.add(nodes)
        return list(ids)

    def delete(self, ids: Sequence[str]) -> None:
        self.vector_store.delete_nodes(node_ids=list(ids))

    def search(self, query: str, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[SearchHit]:
        check_query(query)
        k = check_k(k)
        if k == 0:
            return []
        result = self.vector_store.query(
            VectorStoreQuery(
                query_embedding=self.embed_model.get_query_embedding(query),
                similarity_top_k=k,
                filters=to_metadata_filters(filter),
            )
        )
        ids = result.ids or [n.node_id for n in (result.nodes or [])]
        sims = result.similarities or [0.0] * len(ids)
        nodes: list[Any] = list(result.nodes) if result.nodes else [None] * len(ids)
        hits: list[SearchHit] = []
        for doc_id, score, node in zip(ids, sims, nodes, strict=True):
            text = node.get_content() if node is not None else ""
            meta = dict(node.metadata) if node is not None else {}
            hits.append(SearchHit(str(doc_id), float(score), len(hits) + 1, text, meta))
        return hits

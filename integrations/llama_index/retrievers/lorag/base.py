"""``LoragBM25Retriever`` and ``LoragHybridRetriever`` as LlamaIndex retrievers returning ``NodeWithScore``.

Thin adapters over ``lorag.retrieval``. Each node's ``id_`` is the document id; for the hybrid, the node's metadata
holds each component's score and rank under ``"lorag"`` (excluded from what the LLM and embedder see).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from llama_index.retrievers.lorag.vector_store import LlamaIndexVectorStoreBackend
from lorag.retrieval import BM25Index, DenseIndex, HybridHit, HybridRetriever, SearchHit
from lorag.retrieval.dense import DenseBackend, TextEmbedder

METADATA_KEY = "lorag"


def _split_nodes(nodes: Sequence[BaseNode]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    return (
        [n.get_content() for n in nodes],
        [n.node_id for n in nodes],
        [dict(n.metadata) for n in nodes],
    )


def _to_node(hit: SearchHit | HybridHit) -> NodeWithScore:
    metadata = dict(hit.metadata)
    excluded: list[str] = []
    if isinstance(hit, HybridHit):
        metadata[METADATA_KEY] = {"component_scores": hit.component_scores, "component_ranks": hit.component_ranks}
        excluded = [METADATA_KEY]
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        excluded_llm_metadata_keys=excluded,
        excluded_embed_metadata_keys=excluded,
    )
    return NodeWithScore(node=node, score=hit.score)


class _LoragRetriever(BaseRetriever):
    def __init__(
        self,
        similarity_top_k: int = 4,
        filter: Mapping[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(similarity_top_k, int) or similarity_top_k < 0:
            raise ValueError(f"similarity_top_k must be a non-negative int, got {similarity_top_k!r}")
        self.similarity_top_k = similarity_top_k
        self.filter = dict(filter) if filter else None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _search(self, query: str, k: int) -> list[SearchHit] | list[HybridHit]:
        raise NotImplementedError

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_to_node(h) for h in self._search(query_bundle.query_str, self.similarity_top_k)]


class LoragBM25Retriever(_LoragRetriever):
    """BM25 (Lucene, Okapi, BM25L or BM25+) with stemming and metadata filters, as a LlamaIndex retriever.

    Args:
        index: a ``lorag.retrieval.BM25Index`` (``index.save(path)`` / ``BM25Index.load(path)`` persist it).
        similarity_top_k: nodes returned per query.
        filter: metadata filter applied before the top-k cut (``{key: value}`` or ``{key: [values]}``).
    """

    def __init__(self, index: BM25Index, similarity_top_k: int = 4, **kwargs: Any) -> None:
        self.index = index
        super().__init__(similarity_top_k=similarity_top_k, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "LoragBM25Retriever"

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        bm25_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragBM25Retriever:
        return cls(BM25Index.from_texts(texts, ids=ids, metadatas=metadatas, **(bm25_kwargs or {})), **kwargs)

    @classmethod
    def from_documents(cls, nodes: Sequence[BaseNode], **kwargs: Any) -> LoragBM25Retriever:
        """Index LlamaIndex documents or nodes (their ids become the result ids)."""
        texts, ids, metadatas = _split_nodes(nodes)
        return cls.from_texts(texts, ids, metadatas, **kwargs)

    from_defaults = from_documents

    def _search(self, query: str, k: int) -> list[SearchHit]:
        return self.index.search(query, k=k, filter=self.filter)


class LoragHybridRetriever(_LoragRetriever):
    """BM25 + dense retrieval fused (convex or RRF) as a LlamaIndex retriever.

    The dense side is a lorag FAISS index over ``embedder`` (a ``lorag.embedding.Embedder``), or any LlamaIndex vector
    store (``vector_store=`` with ``embed_model=``) for corpora that live in Qdrant, Milvus, pgvector...
    """

    def __init__(self, retriever: HybridRetriever, similarity_top_k: int = 4, **kwargs: Any) -> None:
        self.retriever = retriever
        super().__init__(similarity_top_k=similarity_top_k, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "LoragHybridRetriever"

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedder: TextEmbedder | None = None,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        vector_store: BasePydanticVectorStore | None = None,
        embed_model: BaseEmbedding | None = None,
        bm25_kwargs: Mapping[str, Any] | None = None,
        dense_kwargs: Mapping[str, Any] | None = None,
        fusion_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragHybridRetriever:
        """Index texts in BM25 and in FAISS (``embedder``) or in a LlamaIndex ``vector_store`` (with ``embed_model``).

        ``fusion_kwargs`` go to ``HybridRetriever`` (fusion, alpha, normalization, rrf_k, weights, depth).
        """
        if vector_store is not None:
            if embedder is not None or embed_model is None:
                raise ValueError("with vector_store, give embed_model (a LlamaIndex embedding) and no embedder")
            dense: DenseBackend = LlamaIndexVectorStoreBackend(vector_store, embed_model)
        elif embedder is not None:
            dense = DenseIndex(embedder, **(dense_kwargs or {}))
        else:
            raise ValueError("give an embedder (lorag FAISS index) or a vector_store with an embed_model")
        hybrid = HybridRetriever(BM25Index(**(bm25_kwargs or {})), dense, **(fusion_kwargs or {}))
        hybrid.add(texts, ids=ids, metadatas=metadatas)
        return cls(hybrid, **kwargs)

    @classmethod
    def from_documents(
        cls, nodes: Sequence[BaseNode], embedder: TextEmbedder | None = None, **kwargs: Any
    ) -> LoragHybridRetriever:
        texts, ids, metadatas = _split_nodes(nodes)
        return cls.from_texts(texts, embedder, ids, metadatas, **kwargs)

    from_defaults = from_documents

    def _search(self, query: str, k: int) -> list[HybridHit]:
        return self.retriever.search(query, k=k, filter=self.filter)

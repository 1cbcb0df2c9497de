"""``LoragBM25Retriever``, ``LoragTfidfRetriever`` and ``LoragHybridRetriever`` as LlamaIndex retrievers returning
``NodeWithScore``.

Thin adapters over ``lorag.retrieval``. Indexed nodes come back as themselves (id, ``ref_doc_id``, relationships;
see ``nodes``); for the hybrid, the node's metadata holds each component's score and rank under ``"lorag"``
(excluded from what the LLM and embedder see). ``filter`` takes lorag's filters or LlamaIndex ``MetadataFilters``,
and ``aretrieve`` searches in a worker thread, so the event loop keeps running while BM25, FAISS and the query
embedding work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters

from llama_index.retrievers.lorag.embedding import LlamaIndexEmbedder
from llama_index.retrievers.lorag.filters import lorag_filter
from llama_index.retrievers.lorag.nodes import restore_node, split_nodes
from llama_index.retrievers.lorag.vector_store import LlamaIndexVectorStoreBackend
from lorag.retrieval import BM25Index, DenseIndex, HybridHit, HybridRetriever, SearchHit, TfidfIndex
from lorag.retrieval.dense import DenseBackend, TextEmbedder
from lorag.retrieval.hybrid import make_sparse

METADATA_KEY = "lorag"
SparseIndexT = TypeVar("SparseIndexT", BM25Index, TfidfIndex)
SparseRetrieverT = TypeVar("SparseRetrieverT", bound="_SparseRetriever[Any]")


def _to_node(hit: SearchHit | HybridHit) -> NodeWithScore:
    node = restore_node(hit.id, hit.text, hit.metadata)
    if isinstance(hit, HybridHit):
        node.metadata[METADATA_KEY] = {
            "component_scores": hit.component_scores,
            "component_ranks": hit.component_ranks,
        }
        for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
            if METADATA_KEY not in excluded:
                excluded.append(METADATA_KEY)
    return NodeWithScore(node=node, score=hit.score)


class _LoragRetriever(BaseRetriever):
    def __init__(
        self,
        similarity_top_k: int = 4,
        filter: Mapping[str, Any] | MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(similarity_top_k, int) or similarity_top_k < 0:
            raise ValueError(f"similarity_top_k must be a non-negative int, got {similarity_top_k!r}")
        self.similarity_top_k = similarity_top_k
        self.filter = filter
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def filter(self) -> dict[str, Any] | None:
        """The metadata filter applied before the top-k cut, in lorag's form (``lorag.retrieval.filters``)."""
        return self._filter

    @filter.setter
    def filter(self, filter: Mapping[str, Any] | MetadataFilters | None) -> None:
        self._filter = lorag_filter(filter)  # an unsupported operator fails here, not at the first query

    def _search(self, query: str, k: int) -> list[SearchHit] | list[HybridHit]:
        raise NotImplementedError

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.retrieve_top(query_bundle.query_str, self.similarity_top_k)

    def retrieve_top(self, query: str, k: int) -> list[NodeWithScore]:
        """The top ``k`` nodes for ``query``: ``retrieve`` with ``k`` chosen per call (as LangChain retrievers take
        ``k=``), for callers that need a depth of their own, such as a query engine's follow-up searches."""
        return [_to_node(h) for h in self._search(query, k)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class _SparseRetriever(_LoragRetriever, Generic[SparseIndexT]):
    """The BM25 and TF-IDF retrievers, which differ only in the index they wrap and the keyword that configures it."""

    index: SparseIndexT

    def __init__(self, index: SparseIndexT, similarity_top_k: int = 4, **kwargs: Any) -> None:
        self.index = index
        super().__init__(similarity_top_k=similarity_top_k, **kwargs)

    @classmethod
    def from_texts(
        cls: type[SparseRetrieverT],
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> SparseRetrieverT:
        """Each retriever's own, under the keyword that configures its index (``bm25_kwargs``, ``tfidf_kwargs``)."""
        raise NotImplementedError

    @classmethod
    def from_documents(cls: type[SparseRetrieverT], nodes: Sequence[BaseNode], **kwargs: Any) -> SparseRetrieverT:
        """Index LlamaIndex documents or nodes; they come back with their ids, ``ref_doc_id`` and relationships."""
        texts, ids, metadatas = split_nodes(nodes)
        return cls.from_texts(texts, ids, metadatas, **kwargs)

    from_defaults = from_documents

    def _search(self, query: str, k: int) -> list[SearchHit]:
        return self.index.search(query, k=k, filter=self.filter)


class LoragBM25Retriever(_SparseRetriever[BM25Index]):
    """BM25 (Lucene, Okapi, BM25L or BM25+) with stemming and metadata filters, as a LlamaIndex retriever.

    Args:
        index: a ``lorag.retrieval.BM25Index`` (``index.save(path)`` / ``BM25Index.load(path)`` persist it).
        similarity_top_k: nodes returned per query.
        filter: metadata filter applied before the top-k cut: lorag's (``{key: value}``, ``{key: [values]}``,
            ``{key: {"$gte": v}}``, ``{"$or": [...]}``; see ``lorag.retrieval.filters``) or ``MetadataFilters``.
    """

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


class LoragTfidfRetriever(_SparseRetriever[TfidfIndex]):
    """TF-IDF cosine (scikit-learn's ``TfidfVectorizer`` scores on lorag's stemmed tokens) with metadata filters, as a
    LlamaIndex retriever.

    Args:
        index: a ``lorag.retrieval.TfidfIndex`` (``index.save(path)`` / ``TfidfIndex.load(path)`` persist it).
        similarity_top_k: nodes returned per query.
        filter: metadata filter applied before the top-k cut, as for ``LoragBM25Retriever``.
    """

    @classmethod
    def class_name(cls) -> str:
        return "LoragTfidfRetriever"

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        tfidf_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragTfidfRetriever:
        """Index texts; ``tfidf_kwargs`` go to ``TfidfIndex`` (sublinear_tf, smooth_idf, tokenizer)."""
        return cls(TfidfIndex.from_texts(texts, ids=ids, metadatas=metadatas, **(tfidf_kwargs or {})), **kwargs)


class LoragHybridRetriever(_LoragRetriever):
    """BM25 (or TF-IDF: ``sparse="tfidf"``) + dense retrieval fused (convex or RRF) as a LlamaIndex retriever.

    The dense side is a lorag FAISS index over ``embedder`` (a ``lorag.embedding.Embedder``, or any LlamaIndex
    ``BaseEmbedding`` such as ``LoragEmbedding``), or any LlamaIndex vector store (``vector_store=``, embedding with
    that ``BaseEmbedding``) for corpora that live in Qdrant, Milvus, pgvector...
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
        embedder: TextEmbedder | BaseEmbedding | None = None,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        vector_store: BasePydanticVectorStore | None = None,
        embed_model: BaseEmbedding | None = None,
        sparse: str = "bm25",
        sparse_kwargs: Mapping[str, Any] | None = None,
        dense_kwargs: Mapping[str, Any] | None = None,
        fusion_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragHybridRetriever:
        """Index texts in BM25 (``sparse="bm25"``) or TF-IDF (``"tfidf"``) and in FAISS or in a LlamaIndex
        ``vector_store``.

        ``embedder`` or ``embed_model`` (LlamaIndex's name; give one) embeds: a ``lorag.embedding.Embedder`` or any
        ``BaseEmbedding`` for FAISS, a ``BaseEmbedding`` for a vector store. ``sparse_kwargs`` go to ``BM25Index`` or
        ``TfidfIndex``; ``fusion_kwargs`` to ``HybridRetriever`` (fusion, alpha, normalization, rrf_k, weights,
        depth).
        """
        if embedder is not None and embed_model is not None:
            raise ValueError("give embedder or embed_model, not both: they are the same argument")
        embedding = embedder if embedder is not None else embed_model
        if embedding is None:
            raise ValueError(
                "give an embedder (lorag Embedder or LlamaIndex embedding), with or without a vector_store"
            )
        if vector_store is not None:
            if not isinstance(embedding, BaseEmbedding):
                raise TypeError(
                    f"a vector_store embeds with a LlamaIndex BaseEmbedding, got {type(embedding).__name__}"
                )
            dense: DenseBackend = LlamaIndexVectorStoreBackend(vector_store, embedding)
        else:
            if isinstance(embedding, BaseEmbedding):
                embedding = LlamaIndexEmbedder(embedding)
            dense = DenseIndex(embedding, **(dense_kwargs or {}))
        hybrid = HybridRetriever(make_sparse(sparse, **(sparse_kwargs or {})), dense, **(fusion_kwargs or {}))
        hybrid.add(texts, ids=ids, metadatas=metadatas)
        return cls(hybrid, **kwargs)

    @classmethod
    def from_documents(
        cls, nodes: Sequence[BaseNode], embedder: TextEmbedder | BaseEmbedding | None = None, **kwargs: Any
    ) -> LoragHybridRetriever:
        """Index LlamaIndex documents or nodes; they come back with their ids, ``ref_doc_id`` and relationships."""
        texts, ids, metadatas = split_nodes(nodes)
        return cls.from_texts(texts, embedder, ids, metadatas, **kwargs)

    from_defaults = from_documents

    def _search(self, query: str, k: int) -> list[HybridHit]:
        return self.retriever.search(query, k=k, filter=self.filter)

"""``LoragBM25Retriever``, ``LoragTfidfRetriever`` and ``LoragHybridRetriever``: lorag's retrieval core as LangChain
retrievers.

Thin adapters: the indexes, fusion and filters live in ``lorag.retrieval``. Each returned ``Document`` has ``id`` set
to the document id and, in its metadata (over any same-named keys of the document's own):

- ``score``: the retrieval score, higher is better. BM25: the BM25 score (>= 0, unbounded, comparable within one
  query). TF-IDF: the cosine of the TF-IDF vectors, in (0, 1]. Hybrid: the fused score, whose scale is the fusion's:
  convex with z-score normalisation (the default) is ``alpha * z(dense) + (1 - alpha) * z(sparse)`` over each
  component's candidates (about -3 to 3, 0 = an average candidate); convex with min-max is in [0, 1]; RRF is
  ``sum(weight / (60 + rank))``, at most about 0.033 with two components. None of these is a probability: rank by
  it, threshold on ``relevance``.
- ``relevance`` (hybrid only): the dense similarity to the query clipped to [0, 1] (cosine for a normalised embedder,
  the store's relevance score for a vector store; 0 when the dense side did not score the document). It is what
  ``lorag ask`` gates on (``--min-relevance``, 0.3 by default), so one threshold means the same in both.
- ``lorag``: the rank and, for the hybrid, each component's score and rank (``component_scores``,
  ``component_ranks``; ``None`` where a component did not return the document).

``k`` and ``filter`` can be set in the constructor and overridden per call: ``retriever.invoke(q, k=3)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field

from langchain_lorag.vectorstores import LangChainEmbedder, LangChainVectorStoreBackend
from lorag.retrieval import BM25Index, DenseIndex, HybridHit, HybridRetriever, SearchHit, TfidfIndex
from lorag.retrieval.dense import TextEmbedder
from lorag.retrieval.hybrid import make_sparse

METADATA_KEY = "lorag"


def _split_documents(documents: Sequence[Document]) -> tuple[list[str], list[dict[str, Any]], list[str] | None]:
    texts = [d.page_content for d in documents]
    metadatas = [dict(d.metadata) for d in documents]
    ids = [d.id for d in documents]
    if all(i is not None for i in ids):
        return texts, metadatas, [str(i) for i in ids]
    if any(i is not None for i in ids):
        raise ValueError("either every document has an id or none has (ids are then generated)")
    return texts, metadatas, None


def relevance(hit: HybridHit) -> float:
    """The hit's dense similarity clipped to [0, 1]: the measure ``lorag.rag.pipeline`` gates on."""
    dense = hit.component_scores.get("dense")
    return 0.0 if dense is None else min(1.0, max(0.0, float(dense)))


def _to_document(hit: SearchHit | HybridHit) -> Document:
    metadata: dict[str, Any] = {**hit.metadata, "score": hit.score}
    info: dict[str, Any] = {"rank": hit.rank}
    if isinstance(hit, HybridHit):
        metadata["relevance"] = relevance(hit)
        info["component_scores"] = hit.component_scores
        info["component_ranks"] = hit.component_ranks
    return Document(id=hit.id, page_content=hit.text, metadata={**metadata, METADATA_KEY: info})


class _LoragRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    k: int = Field(default=4, ge=0)
    """Number of documents to return (override per call with ``invoke(query, k=...)``)."""
    filter: dict[str, Any] | None = None
    """Metadata filter applied before the top-k cut: ``{key: value}``, ``{key: [value, ...]}``, operators
    (``{key: {"$gte": 2020}}``) and ``$and`` / ``$or`` / ``$not`` (``lorag.retrieval.filters``)."""

    def _core(self) -> BM25Index | TfidfIndex | HybridRetriever:
        """The lorag object behind the retriever: every retriever searches, adds and deletes through it alike."""
        raise NotImplementedError

    def add_documents(self, documents: Sequence[Document]) -> list[str]:
        texts, metadatas, ids = _split_documents(documents)
        return self._core().add(texts, ids=ids, metadatas=metadatas)

    def delete(self, ids: Sequence[str]) -> None:
        self._core().delete(ids)

    def _documents(self, query: str, k: int | None, filter: Mapping[str, Any] | None) -> list[Document]:
        """The search behind both ``invoke`` and ``ainvoke``: a per-call ``k`` or ``filter`` overrides the field."""
        hits = self._core().search(
            query, k=self.k if k is None else k, filter=self.filter if filter is None else filter
        )
        return [_to_document(h) for h in hits]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        return self._documents(query, k, filter)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        return await run_in_executor(None, self._documents, query, k, filter)


class _SparseRetriever(_LoragRetriever):
    index: BM25Index | TfidfIndex

    def _core(self) -> BM25Index | TfidfIndex:
        return self.index


class LoragBM25Retriever(_SparseRetriever):
    """BM25 (Lucene, Okapi, BM25L or BM25+) with stemming, metadata filters and save/load.

    Example:
        .. code-block:: python

            retriever = LoragBM25Retriever.from_texts(["foxes hunt at night", "Paris is in France"], k=1)
            retriever.invoke("fox")
    """

    index: BM25Index
    """The lorag index; save it with ``retriever.index.save(path)``, reopen with ``BM25Index.load(path)``."""

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        bm25_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragBM25Retriever:
        """Index texts; ``bm25_kwargs`` go to ``BM25Index`` (method, k1, b, tokenizer), ``kwargs`` to the retriever."""
        return cls(index=BM25Index.from_texts(texts, ids=ids, metadatas=metadatas, **(bm25_kwargs or {})), **kwargs)

    @classmethod
    def from_documents(
        cls, documents: Sequence[Document], *, bm25_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> LoragBM25Retriever:
        texts, metadatas, ids = _split_documents(documents)
        return cls.from_texts(texts, metadatas, ids, bm25_kwargs=bm25_kwargs, **kwargs)


class LoragTfidfRetriever(_SparseRetriever):
    """TF-IDF cosine (scikit-learn's ``TfidfVectorizer`` scores on lorag's stemmed tokens), with metadata filters,
    add/delete and save/load; unlike LangChain's ``TFIDFRetriever`` it needs no scikit-learn and no pickle.

    Example:
        .. code-block:: python

            retriever = LoragTfidfRetriever.from_texts(["foxes hunt at night", "Paris is in France"], k=1)
            retriever.invoke("fox")
    """

    index: TfidfIndex
    """The lorag index; save it with ``retriever.index.save(path)``, reopen with ``TfidfIndex.load(path)``."""

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        tfidf_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragTfidfRetriever:
        """Index texts; ``tfidf_kwargs`` go to ``TfidfIndex`` (sublinear_tf, smooth_idf, tokenizer), ``kwargs`` to the
        retriever."""
        return cls(index=TfidfIndex.from_texts(texts, ids=ids, metadatas=metadatas, **(tfidf_kwargs or {})), **kwargs)

    @classmethod
    def from_documents(
        cls, documents: Sequence[Document], *, tfidf_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> LoragTfidfRetriever:
        texts, metadatas, ids = _split_documents(documents)
        return cls.from_texts(texts, metadatas, ids, tfidf_kwargs=tfidf_kwargs, **kwargs)


class LoragHybridRetriever(_LoragRetriever):
    """BM25 (or TF-IDF: ``sparse="tfidf"``) + dense retrieval fused (convex or RRF); each Document carries every
    component's score and rank.

    The dense side is a lorag FAISS index over a ``lorag.embedding.Embedder`` (or any LangChain ``Embeddings``), or
    any LangChain ``VectorStore`` (``vectorstore=``) for corpora that live in Qdrant, pgvector, Elasticsearch...

    Example:
        .. code-block:: python

            from lorag.embedding import Embedder

            retriever = LoragHybridRetriever.from_texts(texts, Embedder("minilm"), k=5, fusion="rrf")
            retriever.invoke("what do foxes eat?", filter={"topic": "animals"})
    """

    retriever: HybridRetriever
    """The lorag hybrid retriever: ``retriever.retriever.save(path)`` persists it (over a PGVector or Qdrant store,
    lorag's side and which collection it pairs with; ``HybridRetriever.load(path, store=...)`` checks the pairing)."""

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedding: TextEmbedder | Embeddings | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        vectorstore: VectorStore | None = None,
        sparse: str = "bm25",
        sparse_kwargs: Mapping[str, Any] | None = None,
        dense_kwargs: Mapping[str, Any] | None = None,
        fusion_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> LoragHybridRetriever:
        """Index texts in BM25 (``sparse="bm25"``) or TF-IDF (``"tfidf"``) and in FAISS (with ``embedding``) or in
        ``vectorstore``.

        ``sparse_kwargs`` go to ``BM25Index`` or ``TfidfIndex``; ``fusion_kwargs`` to ``HybridRetriever`` (fusion,
        alpha, normalization, rrf_k, weights, depth).
        """
        if (embedding is None) == (vectorstore is None):
            raise ValueError("give exactly one of embedding (lorag FAISS index) or vectorstore (a LangChain store)")
        lexical = make_sparse(sparse, **(sparse_kwargs or {}))
        if vectorstore is not None:
            dense: Any = LangChainVectorStoreBackend(vectorstore)
        else:
            embedder = LangChainEmbedder(embedding) if isinstance(embedding, Embeddings) else embedding
            dense = DenseIndex(embedder, **(dense_kwargs or {}))  # type: ignore[arg-type]
        hybrid = HybridRetriever(lexical, dense, **(fusion_kwargs or {}))
        hybrid.add(texts, ids=ids, metadatas=metadatas)
        return cls(retriever=hybrid, **kwargs)

    @classmethod
    def from_documents(
        cls, documents: Sequence[Document], embedding: TextEmbedder | Embeddings | None = None, **kwargs: Any
    ) -> LoragHybridRetriever:
        texts, metadatas, ids = _split_documents(documents)
        return cls.from_texts(texts, embedding, metadatas, ids, **kwargs)

    def _core(self) -> HybridRetriever:
        return self.retriever

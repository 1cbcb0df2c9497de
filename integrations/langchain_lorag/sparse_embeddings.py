"""``LoragSparseEmbeddings``: lorag's BM25 as langchain-qdrant sparse embeddings, so Qdrant's hybrid search ranks
its sparse side by lorag's BM25 (``lorag.retrieval.store_sparse``). The collection must weight sparse dimensions by
IDF: ``sparse_vectors_config={name: SparseVectorParams(modifier=Modifier.IDF)}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_qdrant import SparseEmbeddings, SparseVector

from lorag.retrieval.store_sparse import BM25SparseEncoder


class LoragSparseEmbeddings(SparseEmbeddings):
    """BM25 term weights as Qdrant sparse vectors.

    Args:
        encoder: a ``BM25SparseEncoder`` (``BM25SparseEncoder.fit(texts)`` measures the corpus' average length);
            one with lorag's defaults if omitted. ``kwargs`` go to ``BM25SparseEncoder`` when it is omitted.
    """

    def __init__(self, encoder: BM25SparseEncoder | None = None, **kwargs: Any) -> None:
        if encoder is not None and kwargs:
            raise ValueError(f"give an encoder or its settings, not both (got {sorted(kwargs)})")
        self.encoder = encoder or BM25SparseEncoder(**kwargs)

    @classmethod
    def fit(cls, texts: Sequence[str], **kwargs: Any) -> LoragSparseEmbeddings:
        """Sparse embeddings whose average document length is measured on ``texts``."""
        return cls(BM25SparseEncoder.fit(texts, **kwargs))

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [SparseVector(indices=v.indices, values=v.values) for v in self.encoder.encode_documents(texts)]

    def embed_query(self, text: str) -> SparseVector:
        vector = self.encoder.encode_query(text)
        return SparseVector(indices=vector.indices, values=vector.values)

"""Sentence embeddings: one ``Embedder`` over any sentence-transformers model, with a content-keyed cache."""

from lorag.embedding.cache import EmbeddingCache
from lorag.embedding.encoder import Embedder

__all__ = ["Embedder", "EmbeddingCache"]

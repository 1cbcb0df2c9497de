"""Sentence embeddings: one ``Embedder`` over any sentence-transformers model, with a content-keyed cache."""

from lorag.embedding.cache import EmbeddingCache, EmbeddingCacheError
from lorag.embedding.encoder import Embedder
from lorag.embedding.faiss_index import add_to_faiss_index, build_faiss_index, faiss_input, search_faiss_index
from lorag.embedding.openvino_backend import calibration_sample
from lorag.embedding.quantization import PRECISIONS, quantize

__all__ = [
    "PRECISIONS",
    "Embedder",
    "EmbeddingCache",
    "EmbeddingCacheError",
    "add_to_faiss_index",
    "build_faiss_index",
    "calibration_sample",
    "faiss_input",
    "quantize",
    "search_faiss_index",
]

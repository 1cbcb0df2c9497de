"""Hybrid retrieval: BM25 (four variants) or TF-IDF + dense FAISS + fusion, with persistence and metadata filters.

One concept per module: ``tokenization``, ``scoring`` (BM25 and TF-IDF formulas), ``bm25`` (``BM25Index``), ``tfidf``
(``TfidfIndex``), ``dense`` (``DenseIndex`` and the ``DenseBackend`` protocol), ``fusion`` (RRF, convex), ``hybrid``
(``HybridRetriever``), ``candidates`` (what it fuses, gathered per kind of dense side), ``documents`` (ids,
metadata, filters) and ``persistence`` (atomic, pickle-free index directories).
"""

from lorag.retrieval.bm25 import BM25Index
from lorag.retrieval.dense import DenseBackend, DenseIndex, TextEmbedder
from lorag.retrieval.documents import MetadataFilter, SearchHit
from lorag.retrieval.hybrid import HybridHit, HybridRetriever
from lorag.retrieval.persistence import IndexFormatError, SettingsMismatchError
from lorag.retrieval.tfidf import TfidfIndex
from lorag.retrieval.tokenization import TextTokenizer, Tokenizer

__all__ = [
    "BM25Index",
    "DenseBackend",
    "DenseIndex",
    "HybridHit",
    "HybridRetriever",
    "IndexFormatError",
    "MetadataFilter",
    "SearchHit",
    "SettingsMismatchError",
    "TextEmbedder",
    "TextTokenizer",
    "TfidfIndex",
    "Tokenizer",
]

"""The FAISS index that matches an embedding precision, so retrievers store what the Embedder emits.

- ``float32``: exact inner product (``IndexFlatIP``); with normalised vectors that is cosine similarity.
- ``int8``: ``IndexScalarQuantizer`` with ``QT_8bit_direct_signed``, which stores the int8 codes as they are
  (one byte per dimension, no training) and scores by inner product of the codes, as sentence-transformers'
  int8 search does.
- ``binary``: ``IndexBinaryFlat`` over the packed sign bits; FAISS returns Hamming distances, which
  ``search_faiss_index`` negates so that a larger score is always better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding.quantization import check_precision


def build_faiss_index(precision: str, dimension: int) -> Any:
    """An empty FAISS index for ``dimension``-d embeddings at ``precision`` (``dimension`` counts floats, not bytes)."""
    faiss = require("faiss", purpose="dense retrieval")
    check_precision(precision)
    if dimension <= 0:
        raise ValueError(f"dimension must be positive, got {dimension}")
    if precision == "float32":
        return faiss.IndexFlatIP(dimension)
    if precision == "int8":
        return faiss.IndexScalarQuantizer(
            dimension, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexBinaryFlat(8 * ((dimension + 7) // 8))


def faiss_input(vectors: np.ndarray, precision: str) -> np.ndarray:
    """Vectors from ``Embedder.embed_*`` in the dtype the matching index's ``add`` / ``search`` take."""
    check_precision(precision)
    if precision == "binary":
        return np.ascontiguousarray(vectors, dtype=np.uint8)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def add_to_faiss_index(index: Any, vectors: np.ndarray, precision: str) -> None:
    if len(vectors):
        index.add(faiss_input(vectors, precision))


def search_faiss_index(index: Any, queries: np.ndarray, k: int, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids) per query; scores are larger-is-better at every precision, ids ``-1`` pad short lists."""
    if k <= 0 or index.ntotal == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64)
    scores, ids = index.search(faiss_input(queries, precision), min(k, index.ntotal))
    scores = np.asarray(scores, dtype=np.float32)
    return (-scores if precision == "binary" else scores), np.asarray(ids, dtype=np.int64)

"""lorag's one FAISS layer: the index that matches an embedding precision and structure, and its search.

``lorag.retrieval.DenseIndex`` builds and searches its index here and adds what a retriever needs on top (document
ids, metadata filters as FAISS selectors, deletion, persistence); code that wants bare vectors in, ids out (the README
example, ``benchmarks/distill.py``) uses these functions alone.

Precision (what the ``Embedder`` emits):

- ``float32``: inner product; with normalised vectors that is cosine similarity.
- ``int8``: ``IndexScalarQuantizer`` with ``QT_8bit_direct_signed``, which stores the int8 codes as they are
  (one byte per dimension, no training) and scores by inner product of the codes, as sentence-transformers'
  int8 search does.
- ``binary``: ``IndexBinaryFlat`` over the packed sign bits; FAISS returns Hamming distances, which
  ``search_faiss_index`` negates so that a larger score is always better.

Structure (``index_type``, float32 only): ``"flat"`` (exact, ``IndexFlatIP``), ``"hnsw"`` (``IndexHNSWFlat``) or
``"ivf"`` (``IndexIVFFlat``, trained by its first ``add``), all by inner product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding.quantization import check_precision

INDEX_TYPES = ("flat", "hnsw", "ivf")


def build_faiss_index(
    precision: str,
    dimension: int,
    *,
    index_type: str = "flat",
    hnsw_m: int = 32,
    ef_search: int = 64,
    nlist: int | None = None,
) -> Any:
    """An empty FAISS index for ``dimension``-d embeddings at ``precision`` (``dimension`` counts floats, not bytes).

    ``hnsw_m`` and ``ef_search`` are HNSW's graph degree and search breadth, ``nlist`` IVF's number of cells.
    """
    faiss = require("faiss", purpose="dense retrieval")
    check_precision(precision)
    if dimension <= 0:
        raise ValueError(f"dimension must be positive, got {dimension}")
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index_type {index_type!r}; choose one of {list(INDEX_TYPES)}")
    if index_type != "flat" and precision != "float32":
        raise ValueError(f"index_type {index_type!r} holds float32 vectors only, not {precision}")
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
        return index
    if index_type == "ivf":
        if nlist is None or nlist <= 0:
            raise ValueError(f"index_type 'ivf' needs a positive nlist (its number of cells), got {nlist}")
        return faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
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


def search_params(index_type: str, *, selector: Any = None, ef_search: int = 64, nprobe: int = 8) -> Any:
    """FAISS search parameters for one search: HNSW's breadth or IVF's cells visited, and an optional id selector
    (``faiss.IDSelectorBatch``), which applies inside the search, before the top-k cut."""
    faiss = require("faiss", purpose="dense retrieval")
    kwargs: dict[str, Any] = {} if selector is None else {"sel": selector}
    if index_type == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=ef_search, **kwargs)
    if index_type == "ivf":
        return faiss.SearchParametersIVF(nprobe=nprobe, **kwargs)
    return faiss.SearchParameters(**kwargs)


def search_faiss_index(
    index: Any, queries: np.ndarray, k: int, precision: str, *, params: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids) per query; scores are larger-is-better at every precision, ids ``-1`` pad short lists.

    ``params`` (from ``search_params``) go to FAISS's ``search`` as they are.
    """
    if k <= 0 or index.ntotal == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64)
    x, k = faiss_input(queries, precision), min(k, index.ntotal)
    scores, ids = index.search(x, k) if params is None else index.search(x, k, params=params)
    scores = np.asarray(scores, dtype=np.float32)
    return (-scores if precision == "binary" else scores), np.asarray(ids, dtype=np.int64)

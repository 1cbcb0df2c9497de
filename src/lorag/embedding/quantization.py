"""Embedding precision: float32, int8 (per-dimension ranges from calibration embeddings) or packed binary.

The arithmetic is sentence-transformers' ``quantize_embeddings``; this module only keeps the calibration ranges
fixed, so queries and documents embedded at different times share one scale (ranges computed per call would not).
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

import numpy as np

from lorag._imports import require

Precision = Literal["float32", "int8", "binary"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def calibration_ranges(calibration_embeddings: np.ndarray) -> np.ndarray:
    """Per-dimension ``[min; max]`` (shape ``(2, d)``) of float embeddings, the int8 quantization scale."""
    emb = np.asarray(calibration_embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"int8 calibration needs at least 2 embeddings of shape (n, d), got shape {emb.shape}")
    return np.stack([emb.min(axis=0), emb.max(axis=0)]).astype(np.float32)


def ranges_fingerprint(ranges: np.ndarray | None) -> str | None:
    if ranges is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(ranges, dtype=np.float32).tobytes()).hexdigest()[:16]


def quantize(vectors: np.ndarray, precision: Precision, ranges: np.ndarray | None = None) -> np.ndarray:
    """Quantize float embeddings.

    Returns float32 ``(n, d)`` for ``float32``; int8 ``(n, d)`` for ``int8`` (needs ``ranges``); and uint8
    ``(n, ceil(d / 8))`` for ``binary`` (sign bits packed, sentence-transformers' ``ubinary``), the layout FAISS's
    binary indexes take.
    """
    check_precision(precision)
    vectors = np.asarray(vectors, dtype=np.float32)
    if precision == "float32":
        return vectors
    st = require("sentence_transformers", purpose="embedding quantization")
    if precision == "int8":
        if ranges is None:
            raise ValueError(
                "int8 precision needs calibration: pass calibration texts or embeddings (e.g. a sample of the corpus)"
            )
        if ranges.shape != (2, vectors.shape[1]):
            raise ValueError(f"calibration ranges have shape {ranges.shape}, expected (2, {vectors.shape[1]})")
        return np.asarray(st.quantize_embeddings(vectors, precision="int8", ranges=ranges))
    return np.asarray(st.quantize_embeddings(vectors, precision="ubinary"))

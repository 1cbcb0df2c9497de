"""Quantized embeddings as float lists, for frameworks whose vector stores take only floats.

LangChain and LlamaIndex stores compare ``list[float]`` by cosine or dot product, so packed bits would be
meaningless there: int8 codes pass as their integer values (dot products of codes rank like sentence-transformers'
int8 search), and binary embeddings unpack to +1/-1 per dimension (cosine then equals ``1 - 2 * hamming / d``).
"""

from __future__ import annotations

import numpy as np


def as_float_lists(vectors: np.ndarray, precision: str, dimension: int) -> list[list[float]]:
    if precision == "binary":
        bits = np.unpackbits(np.asarray(vectors, dtype=np.uint8), axis=1)[:, :dimension]
        return (bits.astype(np.float32) * 2.0 - 1.0).tolist()
    return np.asarray(vectors, dtype=np.float32).tolist()

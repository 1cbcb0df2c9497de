"""A tiny deterministic embedder for semantic-chunking tests."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """Deterministic 16-d 'embeddings': counts of words hashed into buckets (so shared words mean similar)."""
    out = np.ones((len(texts), 16), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, zlib.crc32(word.encode()) % 16] += 1.0
    return out

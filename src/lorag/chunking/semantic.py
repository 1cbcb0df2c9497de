"""Semantic chunking: cut where the embeddings of consecutive sentence groups diverge.

Each sentence is embedded together with ``buffer_size`` neighbours on each side; the cosine distance between
consecutive groups marks topic shifts, and a threshold picks the breakpoints. Unlike LangChain's
``SemanticChunker``, chunk size is bounded both ways: segments above ``chunk_size`` are re-packed by sentences,
and segments below ``min_chunk_size`` merge into a neighbour when the result still fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lorag.chunking.base import Piece, Splitter
from lorag.chunking.packing import pack
from lorag.chunking.sentence import SentenceSplitter

#: Threshold rules and their default amounts (the same conventions as LangChain's SemanticChunker).
THRESHOLDS: dict[str, float] = {
    "percentile": 95.0,  # distances above this percentile
    "standard_deviation": 3.0,  # above mean + amount * std
    "interquartile": 1.5,  # above mean + amount * IQR
    "gradient": 95.0,  # the distance gradient above this percentile
}


def breakpoints(distances: np.ndarray, threshold: str, amount: float | None = None) -> np.ndarray:
    """Indices ``i`` such that a chunk ends after unit ``i``, given distances between units ``i`` and ``i+1``."""
    if threshold not in THRESHOLDS:
        raise ValueError(f"unknown threshold {threshold!r}; choose one of {sorted(THRESHOLDS)}")
    if distances.size == 0:
        return np.zeros(0, dtype=int)
    amount = THRESHOLDS[threshold] if amount is None else amount
    values = distances
    if threshold == "percentile":
        cut = np.percentile(distances, amount)
    elif threshold == "standard_deviation":
        cut = distances.mean() + amount * distances.std()
    elif threshold == "interquartile":
        q1, q3 = np.percentile(distances, [25, 75])
        cut = distances.mean() + amount * (q3 - q1)
    else:
        values = np.gradient(distances) if distances.size > 1 else distances
        cut = np.percentile(values, amount)
    return np.flatnonzero(values > cut)


def embed_function(embedder: Any) -> Callable[[list[str]], np.ndarray]:
    """Turn any supported embedder into ``texts -> (n, d) array``.

    Accepts a ``lorag.embedding.Embedder`` or LangChain ``Embeddings`` (``embed_documents``), a LlamaIndex
    ``BaseEmbedding`` (``get_text_embedding_batch``), or a plain callable.
    """
    if hasattr(embedder, "embed_documents"):
        return lambda texts: np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    if hasattr(embedder, "get_text_embedding_batch"):
        return lambda texts: np.asarray(embedder.get_text_embedding_batch(texts), dtype=np.float32)
    if callable(embedder):
        return lambda texts: np.asarray(embedder(texts), dtype=np.float32)
    raise TypeError(
        "embedder must be a lorag Embedder, LangChain Embeddings, LlamaIndex BaseEmbedding or a callable "
        f"texts -> vectors, got {type(embedder).__name__}"
    )


class SemanticSplitter(Splitter):
    """Break at topic shifts between sentence groups, within hard minimum and maximum chunk sizes.

    Args:
        embedder: what embeds sentence groups (see ``embed_function``); e.g. ``Embedder("minilm")``.
        chunk_size: hard maximum chunk length (characters, or tokens with ``tokenizer``).
        chunk_overlap: must be 0; semantic chunks do not overlap.
        tokenizer: ``None`` for characters, else a model reference or tokenizer.
        min_chunk_size: chunks shorter than this merge into a neighbour when the merge fits ``chunk_size``.
        threshold: one of ``THRESHOLDS``.
        threshold_amount: the rule's parameter (percentile, number of deviations, IQR factor).
        buffer_size: neighbouring sentences embedded with each sentence on either side.
    """

    method = "semantic"

    def __init__(
        self,
        embedder: Any = None,
        chunk_size: int = 1000,
        chunk_overlap: int = 0,
        *,
        tokenizer: Any = None,
        min_chunk_size: int = 0,
        threshold: str = "percentile",
        threshold_amount: float | None = None,
        buffer_size: int = 1,
    ) -> None:
        super().__init__(chunk_size, chunk_overlap, tokenizer=tokenizer)
        if embedder is None:
            raise ValueError(
                "the semantic splitter needs an embedder, e.g. embedder=lorag.embedding.Embedder('minilm')"
            )
        if chunk_overlap:
            raise ValueError(f"the semantic splitter does not overlap chunks; got chunk_overlap={chunk_overlap}")
        if threshold not in THRESHOLDS:
            raise ValueError(f"unknown threshold {threshold!r}; choose one of {sorted(THRESHOLDS)}")
        if not 0 <= min_chunk_size <= chunk_size:
            raise ValueError(f"min_chunk_size must be between 0 and chunk_size ({chunk_size}), got {min_chunk_size}")
        if buffer_size < 0:
            raise ValueError(f"buffer_size must be >= 0, got {buffer_size}")
        self.embed = embed_function(embedder)
        self.min_chunk_size = min_chunk_size
        self.threshold = threshold
        self.threshold_amount = threshold_amount
        self.buffer_size = buffer_size
        self._sentences = SentenceSplitter(chunk_size, 0, tokenizer=self.length)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "min_chunk_size": self.min_chunk_size,
            "threshold": self.threshold,
            "threshold_amount": self.threshold_amount,
            "buffer_size": self.buffer_size,
        }

    def _pieces(self, text: str) -> list[Piece]:
        starts, ends, lengths = self._sentences.units(text)
        segments = self._segments(text, starts, ends)
        measure = self.length if self.measures_tokens else None
        bounded: list[tuple[int, int]] = []
        for first, last in segments:  # re-pack segments over the maximum by sentences
            for i, j in pack(
                text,
                starts[first : last + 1],
                ends[first : last + 1],
                size=self.chunk_size,
                overlap=0,
                lengths=lengths[first : last + 1],
                measure=measure,
            ):
                bounded.append((first + i, first + j))
        merged = self._merge_small(text, starts, ends, bounded)
        return [(starts[i], ends[j], {}) for i, j in merged]

    def _segments(self, text: str, starts: Sequence[int], ends: Sequence[int]) -> list[tuple[int, int]]:
        n = len(starts)
        if n < 2:
            return [(0, n - 1)] if n else []
        b = self.buffer_size
        groups = [text[starts[max(0, i - b)] : ends[min(n - 1, i + b)]] for i in range(n)]
        vectors = self.embed(groups)
        if vectors.shape[0] != n:
            raise ValueError(f"the embedder returned {vectors.shape[0]} vectors for {n} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.where(norms == 0, 1.0, norms)
        distances = 1.0 - np.sum(unit[:-1] * unit[1:], axis=1)
        cuts = breakpoints(distances, self.threshold, self.threshold_amount).tolist()
        bounds = [-1, *cuts, n - 1]
        return [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]

    def _merge_small(
        self, text: str, starts: Sequence[int], ends: Sequence[int], segments: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        if self.min_chunk_size <= 0:
            return segments

        def size(i: int, j: int) -> int:
            return self.length(text[starts[i] : ends[j]]) if self.measures_tokens else ends[j] - starts[i]

        out: list[tuple[int, int]] = []
        for seg in segments:
            if out and (size(*out[-1]) < self.min_chunk_size or size(*seg) < self.min_chunk_size):
                joined = (out[-1][0], seg[1])
                if size(*joined) <= self.chunk_size:
                    out[-1] = joined
                    continue
            out.append(seg)
        return out

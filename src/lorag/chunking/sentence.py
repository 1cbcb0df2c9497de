"""Sentence packing: whole sentences per chunk, overlap made of whole trailing sentences."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from lorag.chunking.base import Piece, Splitter
from lorag.chunking.packing import BATCH, Atoms, pack_spans
from lorag.chunking.recursive import RecursiveSplitter
from lorag.chunking.sentence_boundaries import iter_sentence_spans


class SentenceSplitter(Splitter):
    """Pack whole sentences into chunks of at most ``chunk_size``; overlap counts whole sentences.

    A sentence longer than ``chunk_size`` on its own is cut at words (then characters) by the recursive splitter.

    Args:
        chunk_size: maximum chunk length (characters, or tokens with ``tokenizer``).
        chunk_overlap: maximum length of the repeated sentences (0: no overlap).
        tokenizer: ``None`` for characters, else a model reference or tokenizer.
        overlap_sentences: repeat at most this many trailing sentences; ``None`` repeats as many as fit in
            ``chunk_overlap``.
    """

    method = "sentence"

    def __init__(
        self,
        chunk_size: int = 1000,
        chunk_overlap: int = 0,
        *,
        tokenizer: Any = None,
        overlap_sentences: int | None = None,
    ) -> None:
        super().__init__(chunk_size, chunk_overlap, tokenizer=tokenizer)
        if overlap_sentences is not None and (isinstance(overlap_sentences, bool) or overlap_sentences < 0):
            raise ValueError(f"overlap_sentences must be None or a non-negative integer, got {overlap_sentences!r}")
        self.overlap_sentences = overlap_sentences
        self._fallback = RecursiveSplitter(chunk_size, 0, tokenizer=self.length, preset="default")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "overlap_sentences": self.overlap_sentences}

    def _pieces(self, text: str) -> list[Piece]:
        spans = pack_spans(
            text,
            self._unit_batches(text),
            size=self.chunk_size,
            overlap=self.chunk_overlap,
            measure=self.length if self.measures_tokens else None,
            max_chars=self.max_chars,
            max_overlap_atoms=self.overlap_sentences,
        )
        return [(s, e, {}) for s, e in spans]

    def units(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """Sentence spans that fit ``chunk_size`` (long sentences cut into parts), with their lengths."""
        starts: list[int] = []
        ends: list[int] = []
        lengths: list[int] = []
        for batch in self._unit_batches(text):
            starts += batch[0]
            ends += batch[1]
            lengths += batch[2]
        return starts, ends, lengths

    def _unit_batches(self, text: str) -> Iterator[Atoms]:
        def cut(start: int, end: int) -> Iterator[Atoms]:  # a sentence is cut at words first, not paragraphs or lines
            return self._fallback.atoms(text, start, end, level=2)

        spans = iter_sentence_spans(text)
        while group := list(islice(spans, BATCH)):
            yield from self._fitting(text, [s for s, _ in group], [e for _, e in group], cut)

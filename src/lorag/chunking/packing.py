"""Greedy packing of small atomic spans (paragraphs, sentences, blocks) into chunks with bounded overlap.

Every splitter first cuts the text into *atoms*: stripped spans that each fit the maximum and that together
cover every non-whitespace character in order. Packing then takes the longest run of atoms that fits, and starts
the next chunk at the earliest atom that keeps the repeated text within ``overlap``. A chunk is measured on the
source slice it spans (gaps included), so characters are exact by arithmetic; token counts are estimated from
the atoms' counts and then checked exactly on the chunk text, because tokens may merge across a gap.

Atoms arrive as a stream of batches and packing keeps only the atoms of the chunk being built, so memory stays
bounded by the output however long the text (a 50 MB line has ten million word atoms).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import accumulate

Measure = Callable[[str], int]

_on_progress: ContextVar[Callable[[int], None] | None] = ContextVar("lorag_chunking_progress", default=None)

#: ``(starts, ends, lengths)`` of consecutive atoms; lengths are tokens when measuring tokens, else characters.
Atoms = tuple[list[int], list[int], list[int]]

#: Atoms per batch that splitters hand to ``pack_spans``: big enough for list operations to run at C speed.
BATCH = 4096


def pack(
    source: str,
    starts: Sequence[int],
    ends: Sequence[int],
    *,
    size: int,
    overlap: int,
    lengths: Sequence[int] | None = None,
    measure: Measure | None = None,
    max_overlap_atoms: int | None = None,
) -> list[tuple[int, int]]:
    """Pack atoms ``[starts[i], ends[i])`` into chunks, returned as inclusive ``(first, last)`` atom ranges.

    The list form of ``pack_spans``, for splitters that keep per-atom data (the semantic splitter).

    Args:
        source: the text the spans index into.
        starts: atom start offsets, increasing.
        ends: atom end offsets, increasing, each atom fitting ``size`` on its own.
        size: the maximum chunk length.
        overlap: the maximum length of text repeated at the start of the next chunk.
        lengths: each atom's exact length; with ``measure``, lengths are tokens, else characters from the spans.
        measure: the exact length function for token lengths; ``None`` measures characters.
        max_overlap_atoms: repeat at most this many atoms (e.g. sentences) as overlap.
    """
    if not starts:
        return []
    counts = list(lengths) if lengths is not None else [e - s for s, e in zip(starts, ends, strict=True)]
    batch = (list(starts), list(ends), counts)
    spans = pack_spans(
        source, [batch], size=size, overlap=overlap, measure=measure, max_overlap_atoms=max_overlap_atoms
    )
    # Atoms are disjoint and non-empty, so starts and ends both increase strictly.
    return [(bisect_left(starts, s), bisect_left(ends, e)) for s, e in spans]


def pack_spans(
    source: str,
    batches: Iterable[Atoms],
    *,
    size: int,
    overlap: int,
    measure: Measure | None = None,
    max_chars: int | None = None,
    max_overlap_atoms: int | None = None,
) -> Iterator[tuple[int, int]]:
    """Pack a stream of atom batches into chunks, yielded as ``(start, end)`` source spans.

    Args:
        max_chars: with ``measure``, the longest chunk in characters as well: a few tokens may span megabytes
            (a tokenizer maps any overlong word to one unknown token), and such a chunk helps no one.
        See ``pack`` for the rest.
    """
    if measure is None:
        return _pack_characters(_Window(batches, None), size, overlap, max_overlap_atoms)
    return _pack_tokens(source, _Window(batches, 0), measure, size, overlap, max_chars, max_overlap_atoms)


@contextmanager
def reporting_progress(callback: Callable[[int], None]) -> Iterator[None]:
    """Within the block, splitters call ``callback(offset)`` each time packing reaches a further offset of the text.

    Chunking one 50 MB file in tokens takes minutes; this lets a caller (``DocumentIndex``) move a progress bar
    through it without a parameter threaded through every splitter. Offsets grow within one ``split`` call.
    """
    token = _on_progress.set(callback)
    try:
        yield
    finally:
        _on_progress.reset(token)


class _Window:
    """The atoms from the current chunk's first one onwards, refilled from the stream as packing needs more."""

    def __init__(self, batches: Iterable[Atoms], prefix_base: int | None) -> None:
        self._batches = iter(batches)
        self.starts: list[int] = []
        self.ends: list[int] = []
        # Running sums of lengths, kept absolute (only differences are used) so dropping atoms costs nothing.
        self.prefix: list[int] | None = None if prefix_base is None else [prefix_base]
        self.done = False
        self._on_progress = _on_progress.get()

    def refill(self, first: int) -> int:
        """Append the next batch, dropping atoms before ``first`` once they are many; returns the shift."""
        batch = next(self._batches, None)
        if batch is None:
            self.done = True
            return 0
        shift = 0
        if first >= BATCH or first > len(self.starts) // 2:
            shift = first
            del self.starts[:first], self.ends[:first]
            if self.prefix is not None:
                del self.prefix[:first]
        starts, ends, lengths = batch
        if self._on_progress is not None and ends:
            self._on_progress(ends[-1])
        self.starts += starts
        self.ends += ends
        if self.prefix is not None:
            sums = accumulate(lengths, initial=self.prefix[-1])
            next(sums)  # the initial value, already there
            self.prefix += sums
        return shift


def _pack_characters(
    window: _Window, size: int, overlap: int, max_overlap_atoms: int | None
) -> Iterator[tuple[int, int]]:
    starts, ends = window.starts, window.ends
    i = 0
    while True:
        # Packing needs one atom past those that fit, unless the stream has ended.
        while not window.done and (len(starts) - i < 2 or ends[-1] <= starts[i] + size):
            i -= window.refill(i)
        n = len(starts)
        if i >= n:
            return
        j = max(i, bisect_right(ends, starts[i] + size, i, n) - 1)
        yield starts[i], ends[j]
        if j >= n - 1:
            return
        k = j + 1
        if overlap > 0:
            lo = max(ends[j] - overlap, ends[j + 1] - size)
            k = bisect_left(starts, lo, i + 1, j + 1)
            if max_overlap_atoms is not None:
                k = max(k, j + 1 - max_overlap_atoms)
        i = k


def _pack_tokens(
    source: str,
    window: _Window,
    measure: Measure,
    size: int,
    overlap: int,
    max_chars: int | None,
    max_overlap_atoms: int | None,
) -> Iterator[tuple[int, int]]:
    starts, ends, prefix = window.starts, window.ends, window.prefix
    assert prefix is not None
    cap = max_chars if max_chars is not None else float("inf")
    i = 0
    min_j = 0
    while True:
        while not window.done and (
            len(starts) - 1 <= max(i, min_j) or (prefix[-1] - prefix[i] <= size and ends[-1] - starts[i] <= cap)
        ):
            shift = window.refill(i)
            i -= shift
            min_j -= shift
        n = len(starts)
        if i >= n:
            return
        j = bisect_right(prefix, prefix[i] + size, i + 1, n + 1) - 2
        if max_chars is not None:
            j = min(j, bisect_right(ends, starts[i] + max_chars, i, n) - 1)
        j = max(min_j, i, j)
        # The estimate adds atom counts; the chunk text may tokenize longer, so check it and back off.
        while j > max(min_j, i) and measure(source[starts[i] : ends[j]]) > size:
            j -= 1
        while i < j and measure(source[starts[i] : ends[j]]) > size:
            i += 1
        yield starts[i], ends[j]
        if j >= n - 1:
            return
        k = j + 1
        if overlap > 0:
            lo = max(prefix[j + 1] - overlap, prefix[j + 2] - size)
            k = min(j + 1, bisect_left(prefix, lo, i + 1, j + 2))
            if max_overlap_atoms is not None:
                k = max(k, j + 1 - max_overlap_atoms)
            if max_chars is not None:
                k = max(k, bisect_left(starts, ends[j + 1] - max_chars, k, j + 1))
            while k <= j and measure(source[starts[k] : ends[j]]) > overlap:
                k += 1
        min_j = j + 1
        i = k

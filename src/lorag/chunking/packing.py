"""Greedy packing of small atomic spans (paragraphs, sentences, blocks) into chunks with bounded overlap.

Every splitter first cuts the text into *atoms*: stripped spans that each fit the maximum and that together
cover every non-whitespace character in order. Packing then takes the longest run of atoms that fits, and starts
the next chunk at the earliest atom that keeps the repeated text within ``overlap``. A chunk is measured on the
source slice it spans (gaps included), so characters are exact by arithmetic; token counts are estimated from
the atoms' counts and then checked exactly on the chunk text, because tokens may merge across a gap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate

Measure = Callable[[str], int]


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
    n = len(starts)
    if n == 0:
        return []
    if measure is None:
        return _pack_characters(starts, ends, size, overlap, max_overlap_atoms)
    assert lengths is not None
    return _pack_tokens(source, starts, ends, lengths, measure, size, overlap, max_overlap_atoms)


def _pack_characters(
    starts: Sequence[int], ends: Sequence[int], size: int, overlap: int, max_overlap_atoms: int | None
) -> list[tuple[int, int]]:
    n = len(starts)
    out: list[tuple[int, int]] = []
    i = 0
    while True:
        j = max(i, bisect_right(ends, starts[i] + size, i, n) - 1)
        out.append((i, j))
        if j >= n - 1:
            return out
        k = j + 1
        if overlap > 0:
            lo = max(ends[j] - overlap, ends[j + 1] - size)
            k = bisect_left(starts, lo, i + 1, j + 1)
            if max_overlap_atoms is not None:
                k = max(k, j + 1 - max_overlap_atoms)
        i = k


def _pack_tokens(
    source: str,
    starts: Sequence[int],
    ends: Sequence[int],
    lengths: Sequence[int],
    measure: Measure,
    size: int,
    overlap: int,
    max_overlap_atoms: int | None,
) -> list[tuple[int, int]]:
    n = len(starts)
    prefix = [0, *accumulate(lengths)]
    out: list[tuple[int, int]] = []
    i = 0
    min_j = 0
    while True:
        j = max(min_j, i, bisect_right(prefix, prefix[i] + size, i + 1, n + 1) - 2)
        # The estimate adds atom counts; the chunk text may tokenize longer, so check it and back off.
        while j > max(min_j, i) and measure(source[starts[i] : ends[j]]) > size:
            j -= 1
        while i < j and measure(source[starts[i] : ends[j]]) > size:
            i += 1
        out.append((i, j))
        if j >= n - 1:
            return out
        k = j + 1
        if overlap > 0:
            lo = max(prefix[j + 1] - overlap, prefix[j + 2] - size)
            k = min(j + 1, bisect_left(prefix, lo, i + 1, j + 2))
            if max_overlap_atoms is not None:
                k = max(k, j + 1 - max_overlap_atoms)
            while k <= j and measure(source[starts[k] : ends[j]]) > overlap:
                k += 1
        min_j = j + 1
        i = k

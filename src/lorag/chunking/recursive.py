"""Recursive splitting: cut at the coarsest separator that makes pieces fit, then pack the pieces.

The separator hierarchy goes paragraph → line → sentence → word → character. A piece that fits is kept whole; a
piece that does not is cut at the next level. Everything works on offsets into the source (no string joins), which
is what makes offsets exact and the splitter fast.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from itertools import chain
from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.length import TokenLength
from lorag.chunking.packing import pack
from lorag.chunking.token import token_windows

# Built-in separators match whitespace only, start with a literal newline where they can (the regex engine then
# scans fast) and absorb the whitespace after the cut, so a piece only needs trimming on its right.
_PARAGRAPH = r"\n[^\S\n]*\n\s*"
_LINE = r"\n\s*"
_SENTENCE = r"(?<=[.!?…。！？])\s+"
_WORD = r"\s+"

#: Separator regexes per preset, coarsest first. After the last level comes a hard cut (characters, or token
#: windows when measuring tokens).
SEPARATORS: dict[str, tuple[str, ...]] = {
    "default": (_PARAGRAPH, _LINE, _SENTENCE, _WORD),
    "markdown": (
        r"\n(?=#{1,6}[ \t])",  # headers
        r"\n(?=```|~~~)",  # fenced code
        r"\n(?=(?:\*{3,}|-{3,}|_{3,})[ \t]*\n)",  # horizontal rules
        _PARAGRAPH,
        _LINE,
        _SENTENCE,
        _WORD,
    ),
    "python": (
        r"\n(?=class\s)",
        r"\n(?=(?:async\s+)?def\s)",
        r"\n(?=[ \t]+(?:async\s+)?def\s)",
        _PARAGRAPH,
        _LINE,
        _WORD,
    ),
}
_BUILT_IN = frozenset(sep for seps in SEPARATORS.values() for sep in seps)


def presets() -> list[str]:
    return sorted(SEPARATORS)


class RecursiveSplitter(Splitter):
    """Split at the coarsest separator that fits, then pack pieces up to ``chunk_size`` with overlap.

    Args:
        chunk_size: maximum chunk length (characters, or tokens with ``tokenizer``).
        chunk_overlap: maximum length repeated between consecutive chunks; overlap is made of whole pieces.
        tokenizer: ``None`` for characters, else a model reference or tokenizer (see ``lorag.chunking.length``).
        preset: a key of ``SEPARATORS`` (``default``, ``markdown``, ``python``); ignored when ``separators`` given.
        separators: custom separator regexes, coarsest first; text is cut just before each match (the match
            stays with the following piece), then pieces are stripped.
    """

    method = "recursive"

    def __init__(
        self,
        chunk_size: int = 1000,
        chunk_overlap: int = 0,
        *,
        tokenizer: Any = None,
        preset: str = "default",
        separators: Sequence[str] | None = None,
    ) -> None:
        super().__init__(chunk_size, chunk_overlap, tokenizer=tokenizer)
        if separators is None:
            if preset not in SEPARATORS:
                raise ValueError(f"unknown separator preset {preset!r}; choose one of {presets()}")
            separators = SEPARATORS[preset]
        self.preset = preset
        self.separators = tuple(separators)
        self._absorbing = all(sep in _BUILT_IN for sep in self.separators)
        try:
            self._regexes = [re.compile(s) for s in self.separators]
        except re.error as err:
            raise ValueError(f"invalid separator regex: {err}") from err

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "preset": self.preset}

    def _pieces(self, text: str) -> list[Piece]:
        starts, ends, lengths = self.atoms(text, 0, len(text))
        measure = self.length if self.measures_tokens else None
        groups = pack(
            text, starts, ends, size=self.chunk_size, overlap=self.chunk_overlap, lengths=lengths, measure=measure
        )
        none: dict[str, Any] = {}  # shared: the base class copies metadata per chunk
        return [(starts[i], ends[j], none) for i, j in groups]

    def atoms(self, text: str, start: int, end: int, level: int = 0) -> tuple[list[int], list[int], list[int]]:
        """Stripped spans covering ``text[start:end]`` that each fit ``chunk_size``, with their lengths."""
        starts: list[int] = []
        ends: list[int] = []
        lengths: list[int] = []
        s, e = strip_span(text, start, end)
        if e > s:
            count = self.length(text[s:e]) if self.measures_tokens else e - s
            if count <= self.chunk_size:
                return [s], [e], [count]
            self._atoms(text, s, e, level, starts, ends, lengths)
        return starts, ends, lengths

    def _atoms(
        self, text: str, start: int, end: int, level: int, starts: list[int], ends: list[int], lengths: list[int]
    ) -> None:
        """Append the atoms of ``text[start:end]``, a stripped span known not to fit."""
        size = self.chunk_size
        tokens = self.measures_tokens
        for lvl in range(level, len(self._regexes)):
            bounds = [start]
            bounds += chain.from_iterable(m.span() for m in self._regexes[lvl].finditer(text, start, end))
            if len(bounds) == 1:
                continue
            bounds.append(end)
            if self._absorbing:  # pieces lie between matches: (start, m1.start), (m1.end, m2.start), ...
                lefts = bounds[0::2]
                rights = bounds[1::2]
                # Rare: whitespace before a newline separator stays on the piece's right; trim it.
                for k in [k for k, r in enumerate(rights) if text[r - 1].isspace()]:
                    rights[k] = lefts[k] + len(text[lefts[k] : rights[k]].rstrip())
                sizes = list(map(operator.sub, rights, lefts))
                if not tokens and max(sizes) <= size and min(sizes) > 0:  # the common case: all fit
                    starts += lefts
                    ends += rights
                    lengths += sizes
                    return
                spans = [(a, b) for a, b in zip(lefts, rights, strict=True) if b > a]
            else:  # custom separators may keep text (cut before each match) and leave whitespace: strip
                cuts = bounds[1:-1:2]
                spans = []
                prev = start
                for cut in cuts:
                    if cut > prev:
                        spans.append(strip_span(text, prev, cut))
                    prev = cut
                spans.append(strip_span(text, prev, end))
                spans = [(s, e) for s, e in spans if e > s]
            if tokens:
                counts = self.length.many([text[s:e] for s, e in spans])
                for (s, e), count in zip(spans, counts, strict=True):
                    if count <= size:
                        starts.append(s)
                        ends.append(e)
                        lengths.append(count)
                    else:
                        self._atoms(text, s, e, lvl + 1, starts, ends, lengths)
            else:
                for s, e in spans:
                    if e - s <= size:
                        starts.append(s)
                        ends.append(e)
                        lengths.append(e - s)
                    else:
                        self._atoms(text, s, e, lvl + 1, starts, ends, lengths)
            return
        self._hard_cut(text, start, end, starts, ends, lengths)

    def _hard_cut(
        self, text: str, start: int, end: int, starts: list[int], ends: list[int], lengths: list[int]
    ) -> None:
        """No separator left: fixed windows of ``chunk_size`` characters, or token windows."""
        if isinstance(self.length, TokenLength):
            for s, e, count in token_windows(text, self.length, self.chunk_size, 0, start, end):
                starts.append(s)
                ends.append(e)
                lengths.append(count)
            return
        for pos in range(start, end, self.chunk_size):
            s, e = strip_span(text, pos, min(pos + self.chunk_size, end))
            if e > s:
                starts.append(s)
                ends.append(e)
                lengths.append(e - s)

"""Recursive splitting: cut at the coarsest separator that makes pieces fit, then pack the pieces.

The separator hierarchy goes paragraph → line → sentence → word → character. A piece that fits is kept whole; a
piece that does not is cut at the next level. Everything works on offsets into the source (no string joins), which
is what makes offsets exact and the splitter fast.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Sequence
from itertools import chain, islice
from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.length import TokenLength
from lorag.chunking.packing import BATCH, Atoms, pack_spans
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
        measure = self.length if self.measures_tokens else None
        spans = pack_spans(
            text,
            self.atoms(text, 0, len(text)),
            size=self.chunk_size,
            overlap=self.chunk_overlap,
            measure=measure,
            max_chars=self.max_chars,
        )
        none: dict[str, Any] = {}  # shared: the base class copies metadata per chunk
        return [(s, e, none) for s, e in spans]

    def atoms(self, text: str, start: int, end: int, level: int = 0) -> Iterator[Atoms]:
        """Batches of stripped spans covering ``text[start:end]`` that each fit ``chunk_size``, with their lengths.

        A span longer than ``max_chars`` is cut without being measured, so no tokenizer call sees more than that.
        """
        s, e = strip_span(text, start, end)
        if e <= s:
            return
        if e - s <= self.max_chars:
            count = self.length(text[s:e]) if self.measures_tokens else e - s
            if count <= self.chunk_size:
                yield [s], [e], [count]
                return
        yield from self._atoms(text, s, e, level)

    def _atoms(self, text: str, start: int, end: int, level: int) -> Iterator[Atoms]:
        """The atoms of ``text[start:end]``, a stripped span known not to fit."""
        for lvl in range(level, len(self._regexes)):
            matches = self._regexes[lvl].finditer(text, start, end)
            first = next(matches, None)
            if first is None:
                continue
            matches = chain((first,), matches)
            prev = start  # where the piece after the last match seen begins
            while group := list(islice(matches, BATCH)):
                if self._absorbing:  # pieces lie between matches: (start, m1.start), (m1.end, m2.start), ...
                    bounds = [prev, *chain.from_iterable(m.span() for m in group)]
                    prev = bounds.pop()
                    yield from self._fit(text, bounds[0::2], bounds[1::2], lvl)
                else:  # custom separators may keep text (cut before each match)
                    cuts = [prev, *(m.start() for m in group)]
                    prev = cuts.pop()
                    yield from self._fit(text, cuts, [*cuts[1:], prev], lvl)
            yield from self._fit(text, [prev], [end], lvl)
            return
        yield from self._hard_cut(text, start, end)

    def _fit(self, text: str, lefts: list[int], rights: list[int], level: int) -> Iterator[Atoms]:
        """The pieces ``[lefts[k], rights[k])`` that fit, and the atoms of those that do not, in order."""
        if self._absorbing:
            # Rare: whitespace before a newline separator stays on the piece's right; trim it.
            for k in [k for k, r in enumerate(rights) if r > lefts[k] and text[r - 1].isspace()]:
                rights[k] = strip_span(text, lefts[k], rights[k])[1]
        else:
            for k, (a, b) in enumerate(zip(lefts, rights, strict=True)):
                lefts[k], rights[k] = strip_span(text, a, b)
        yield from self._fitting(text, lefts, rights, lambda s, e: self._atoms(text, s, e, level + 1))

    def _hard_cut(self, text: str, start: int, end: int) -> Iterator[Atoms]:
        """No separator left: fixed windows of ``chunk_size`` characters, or token windows."""
        if isinstance(self.length, TokenLength):
            windows = token_windows(text, self.length, self.chunk_size, 0, start, end, max_chars=self.max_chars)
            while group := list(islice(windows, BATCH)):
                yield [w[0] for w in group], [w[1] for w in group], [w[2] for w in group]
            return
        size = self.chunk_size
        for left in range(start, end, size * BATCH):
            right = min(left + size * BATCH, end)
            starts: list[int] = []
            ends: list[int] = []
            for pos in range(left, right, size):
                s, e = strip_span(text, pos, min(pos + size, right))
                if e > s:
                    starts.append(s)
                    ends.append(e)
            yield starts, ends, list(map(operator.sub, ends, starts))

"""``Splitter``: the shared contract of every lorag splitter (validation, offsets, metadata, token counts)."""

from __future__ import annotations

import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from lorag.chunking.chunk import Chunk
from lorag.chunking.length import LengthFunction, TokenLength, make_length
from lorag.chunking.packing import Atoms

_NON_SPACE = re.compile(r"\S")

#: ``(start, end, metadata)``: one chunk's stripped span in the source and what the splitter says about it.
Piece = tuple[int, int, dict[str, Any]]

#: Measuring tokens, a chunk spans at most ``chunk_size`` times this many characters. Prose has 3-6 characters per
#: token; only runs that a tokenizer maps to one unknown token (a 5 MB word) or long whitespace come near it, and
#: without the cap such a run would become one multi-megabyte chunk and be tokenized whole.
MAX_CHARS_PER_TOKEN = 32


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude surrounding whitespace; an all-whitespace span becomes empty."""
    first = _NON_SPACE.search(text, start, end)  # no copy of the span, unlike str.strip
    if first is None:
        return start, start
    while text[end - 1].isspace():
        end -= 1
    return first.start(), end


def validate_sizes(chunk_size: Any, chunk_overlap: Any, unit: str) -> None:
    """Raise a ValueError naming the bad size; sizes are in ``unit`` (characters or tokens)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer number of {unit}, got {chunk_size!r}")
    if isinstance(chunk_overlap, bool) or not isinstance(chunk_overlap, int) or chunk_overlap < 0:
        raise ValueError(f"chunk_overlap must be a non-negative integer number of {unit}, got {chunk_overlap!r}")
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size}) {unit}, "
            "or no chunk could move past the previous one"
        )


class Splitter(ABC):
    """Cut a text into ``Chunk``s no longer than ``chunk_size`` with exact offsets.

    Subclasses implement ``_pieces(text)``, returning stripped spans in order; this class validates input, adds
    the caller's metadata, token counts and indices. Time is linear in the text's length and memory bounded by
    the output, whatever the text's shape (one 50 MB line, no whitespace, one giant table).

    Args:
        chunk_size: the maximum chunk length, in characters, or in tokens when ``tokenizer`` is given.
        chunk_overlap: the maximum length repeated between consecutive chunks, same unit.
        tokenizer: ``None`` (characters), a model reference, a ``transformers`` tokenizer or a ``TokenLength``.

    Attributes:
        max_chars: the most characters a chunk spans: ``chunk_size`` measuring characters, else ``chunk_size``
            times ``MAX_CHARS_PER_TOKEN``.
    """

    method: ClassVar[str]

    def __init__(self, chunk_size: int, chunk_overlap: int = 0, *, tokenizer: Any = None) -> None:
        self.length: LengthFunction = make_length(tokenizer)
        validate_sizes(chunk_size, chunk_overlap, self.length.unit)
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_chars = chunk_size * MAX_CHARS_PER_TOKEN if self.measures_tokens else chunk_size

    @property
    def measures_tokens(self) -> bool:
        return isinstance(self.length, TokenLength)

    def split(self, text: str, metadata: Mapping[str, Any] | None = None) -> list[Chunk]:
        """Split ``text``; each chunk's metadata is ``metadata`` plus what this splitter adds.

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: ``text`` is empty or only whitespace.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if _NON_SPACE.search(text) is None:
            raise ValueError(f"cannot split empty text (got {text!r}); pass a text with non-whitespace characters")
        pieces = self._pieces(text)
        texts = [text[s:e] for s, e, _ in pieces]
        counts: list[int | None] = list(self.length.many(texts)) if self.measures_tokens else [None] * len(texts)
        base = dict(metadata or {})
        chunks = []
        for index, ((start, end, extra), chunk_text, count) in enumerate(zip(pieces, texts, counts, strict=True)):
            meta = {**base, **extra}
            if (count if count is not None else end - start) > self.chunk_size:
                meta["oversized"] = True
            chunks.append(Chunk(chunk_text, start, end, index, count, meta))
        return chunks

    def split_text(self, text: str) -> list[str]:
        """The chunks' texts only."""
        return [c.text for c in self.split(text)]

    def _fitting(
        self, text: str, starts: list[int], ends: list[int], cut: Callable[[int, int], Iterable[Atoms]]
    ) -> Iterator[Atoms]:
        """The spans ``[starts[k], ends[k])`` that fit ``chunk_size``, in runs with their lengths, and in place of
        each span that does not, the atoms ``cut(start, end)`` gives; empty spans are dropped.

        The sentence and recursive splitters share it. Measuring tokens, only spans up to ``max_chars`` are
        tokenized, in one batch: longer ones are cut anyway.
        """
        sizes = list(map(operator.sub, ends, starts))
        if not self.measures_tokens and max(sizes) <= self.chunk_size and min(sizes) > 0:  # the common case
            yield starts, ends, sizes
            return
        if self.measures_tokens:
            short = [k for k, n in enumerate(sizes) if 0 < n <= self.max_chars]
            counts = self.length.many([text[starts[k] : ends[k]] for k in short])
            sizes = [self.chunk_size + 1] * len(sizes)
            for k, count in zip(short, counts, strict=True):
                sizes[k] = count
        run: Atoms = ([], [], [])
        for s, e, n in zip(starts, ends, sizes, strict=True):
            if e <= s:
                continue
            if n <= self.chunk_size:
                run[0].append(s)
                run[1].append(e)
                run[2].append(n)
                continue
            if run[0]:
                yield run
                run = ([], [], [])
            yield from cut(s, e)
        if run[0]:
            yield run

    @abstractmethod
    def _pieces(self, text: str) -> list[Piece]:
        """Stripped, non-empty ``(start, end, metadata)`` spans in source order."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output, for logs and benchmark tables."""
        return {
            "method": self.method,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "length": repr(self.length),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "method")
        return f"{type(self).__name__}({args})"

"""Header-aware Markdown splitting that keeps fenced code blocks and tables whole.

The text is parsed line by line into blocks (ATX header, fenced code, table, paragraph). Chunks never cross a
header, so each chunk has one header path (``metadata["header_path"]``, titles joined by ``" > "``). Blocks are
packed whole; a paragraph too long for a chunk is cut recursively, and a code block or table is cut (at lines)
only when it alone exceeds ``chunk_size``, which the chunk's ``metadata["split_block"]`` (``"code"`` or
``"table"``) then says.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.packing import Atoms, pack_spans
from lorag.chunking.recursive import RecursiveSplitter

_HEADER = re.compile(r" {0,3}(#{1,6})[ \t]+(.*)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Matched on the stripped line; no whitespace at either end keeps the match linear in the line's length.
_TABLE_DELIMITER = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?")

HEADER_PATH_SEPARATOR = " > "


@dataclass
class _Block:
    kind: str  # "header", "code", "table", "text"
    start: int
    end: int


class MarkdownSplitter(Splitter):
    """Split Markdown by sections, packing whole blocks; header path in metadata.

    Args:
        chunk_size: maximum chunk length (characters, or tokens with ``tokenizer``).
        chunk_overlap: maximum length repeated between consecutive chunks of one section (whole blocks).
        tokenizer: ``None`` for characters, else a model reference or tokenizer.
    """

    method = "markdown"

    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 0, *, tokenizer: Any = None) -> None:
        super().__init__(chunk_size, chunk_overlap, tokenizer=tokenizer)
        self._prose = RecursiveSplitter(chunk_size, 0, tokenizer=self.length, preset="default")
        # Code and tables are cut at lines first, then words.
        self._lines = RecursiveSplitter(chunk_size, 0, tokenizer=self.length, separators=(r"\n", r"\s+"))

    def _pieces(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        measure = self.length if self.measures_tokens else None
        for (_, path), blocks in groupby(_blocks(text), key=lambda item: item[:2]):
            meta = {"header_path": path}
            cut: deque[tuple[int, int, str]] = deque()  # code and table blocks too long to stay whole
            atoms = self._section_atoms(text, (block for _, _, block in blocks), cut)
            for start, end in pack_spans(
                text,
                atoms,
                size=self.chunk_size,
                overlap=self.chunk_overlap,
                measure=measure,
                max_chars=self.max_chars,
            ):
                while cut and cut[0][1] <= start:  # chunks only move forward
                    cut.popleft()
                extra = dict(meta)
                kinds = set()
                for block_start, _, kind in cut:
                    if block_start >= end:
                        break
                    kinds.add(kind)
                if kinds:
                    extra["split_block"] = ",".join(sorted(kinds))
                pieces.append((start, end, extra))
        return pieces

    def _section_atoms(self, text: str, blocks: Iterator[_Block], cut: deque[tuple[int, int, str]]) -> Iterator[Atoms]:
        """The atoms of one section's blocks; code and table blocks cut into several atoms are added to ``cut``."""
        for block in blocks:
            s, e = strip_span(text, block.start, block.end)
            if e <= s:
                continue
            fallback = self._prose if block.kind in ("text", "header") else self._lines
            batches = fallback.atoms(text, s, e)
            first = next(batches, None)
            if first is None:
                continue
            second = next(batches, None)
            if block.kind in ("code", "table") and (len(first[0]) > 1 or second is not None):
                cut.append((s, e, block.kind))
            yield first
            if second is not None:
                yield second
                yield from batches


def _blocks(text: str) -> Iterator[tuple[int, str, _Block]]:
    """Every block in order, with its section's number and header path (titles outermost first).

    A cursor over the lines rather than a list of them: a file of short lines would need a tuple per line.
    """
    stack: list[tuple[int, str]] = []
    section, path = 0, ""
    paragraph: int | None = None  # where the open paragraph starts
    pos, size = 0, len(text)
    while pos < size:
        end = _line_end(text, pos)
        line = text[pos:end].rstrip("\n")
        fence = _FENCE.match(line)
        header = None if fence else _HEADER.match(line)
        table = (
            not fence
            and not header
            and "|" in line
            and end < size
            and _TABLE_DELIMITER.fullmatch(text[end : _line_end(text, end)].strip()) is not None
        )
        blank = not line or line.isspace()
        if paragraph is not None and (fence or header or table or blank):
            yield section, path, _Block("text", paragraph, pos)
            paragraph = None
        if fence:
            marker = fence.group(1)
            stop = end
            while stop < size:  # up to and including the closing fence, else to the end of the text
                closing = text[stop : _line_end(text, stop)].strip()
                stop = _line_end(text, stop)
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
            yield section, path, _Block("code", pos, stop)
            pos = stop
        elif header:
            level = len(header.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, _title(header.group(2))))
            section += 1
            path = HEADER_PATH_SEPARATOR.join(title for _, title in stack)
            yield section, path, _Block("header", pos, end)
            pos = end
        elif table:
            stop = _line_end(text, end)  # past the delimiter row
            while stop < size:
                row_end = _line_end(text, stop)
                row = text[stop:row_end]
                if "|" not in row or row.isspace():
                    break
                stop = row_end
            yield section, path, _Block("table", pos, stop)
            pos = stop
        else:
            if not blank and paragraph is None:
                paragraph = pos
            pos = end
    if paragraph is not None:
        yield section, path, _Block("text", paragraph, size)


def _line_end(text: str, pos: int) -> int:
    """One past the newline ending the line at ``pos`` (or the end of the text)."""
    newline = text.find("\n", pos)
    return len(text) if newline < 0 else newline + 1


def _title(raw: str) -> str:
    """A header's title without closing hashes (``## A ##``) or an attribute list (``{ #anchor }``)."""
    title = raw.rstrip(" \t")
    bare = title.rstrip("#")
    if bare != title and bare and bare[-1] in " \t":
        title = bare
    title = title.rstrip()
    if title.endswith("}"):
        brace = title.rfind("{")
        if brace >= 0 and "}" not in title[brace + 1 : -1] and title[brace + 1 :].lstrip().startswith("#"):
            title = title[:brace]
    return title.strip()

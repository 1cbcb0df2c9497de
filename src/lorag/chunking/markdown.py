"""Header-aware Markdown splitting that keeps fenced code blocks and tables whole.

The text is parsed line by line into blocks (ATX header, fenced code, table, paragraph). Chunks never cross a
header, so each chunk has one header path (``metadata["header_path"]``, titles joined by ``" > "``). Blocks are
packed whole; a paragraph too long for a chunk is cut recursively, and a code block or table is cut (at lines)
only when it alone exceeds ``chunk_size``, which the chunk's ``metadata["split_block"]`` (``"code"`` or
``"table"``) then says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.packing import pack
from lorag.chunking.recursive import RecursiveSplitter

_HEADER = re.compile(r" {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_TABLE_DELIMITER = re.compile(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_HEADER_ID = re.compile(r"\s*\{\s*#[^}]*\}\s*$")  # "{ #anchor }" attribute lists

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
        for path, blocks in _sections(text):
            meta = {"header_path": HEADER_PATH_SEPARATOR.join(path)}
            starts: list[int] = []
            ends: list[int] = []
            lengths: list[int] = []
            split_kind: list[str | None] = []
            for block in blocks:
                s, e = strip_span(text, block.start, block.end)
                if e <= s:
                    continue
                fallback = self._prose if block.kind in ("text", "header") else self._lines
                more = fallback.atoms(text, s, e)
                starts.extend(more[0])
                ends.extend(more[1])
                lengths.extend(more[2])
                cut = len(more[0]) > 1 and block.kind in ("code", "table")
                split_kind.extend([block.kind if cut else None] * len(more[0]))
            measure = self.length if self.measures_tokens else None
            for i, j in pack(
                text, starts, ends, size=self.chunk_size, overlap=self.chunk_overlap, lengths=lengths, measure=measure
            ):
                extra = dict(meta)
                kinds = {k for k in split_kind[i : j + 1] if k}
                if kinds:
                    extra["split_block"] = ",".join(sorted(kinds))
                pieces.append((starts[i], ends[j], extra))
        return pieces


def _sections(text: str) -> list[tuple[list[str], list[_Block]]]:
    """Blocks grouped by section, each section with its header path (outermost first)."""
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text)]
    sections: list[tuple[list[str], list[_Block]]] = [([], [])]
    stack: list[tuple[int, str]] = []
    i = 0
    para_start: int | None = None

    def close_paragraph(at: int) -> None:
        nonlocal para_start
        if para_start is not None:
            sections[-1][1].append(_Block("text", para_start, at))
            para_start = None

    while i < len(lines):
        s, e = lines[i]
        line = text[s:e].rstrip("\n")
        fence = _FENCE.match(line)
        if fence:
            close_paragraph(s)
            marker = fence.group(1)
            j = i + 1
            while j < len(lines):
                closing = text[lines[j][0] : lines[j][1]].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                j += 1
            last = min(j, len(lines) - 1)
            sections[-1][1].append(_Block("code", s, lines[last][1]))
            i = last + 1
            continue
        header = _HEADER.match(line)
        if header:
            close_paragraph(s)
            level = len(header.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, _HEADER_ID.sub("", header.group(2)).strip()))
            sections.append(([t for _, t in stack], [_Block("header", s, e)]))
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_DELIMITER.match(text[lines[i + 1][0] : lines[i + 1][1]]):
            close_paragraph(s)
            j = i + 2
            while j < len(lines) and "|" in text[lines[j][0] : lines[j][1]] and text[lines[j][0] : lines[j][1]].strip():
                j += 1
            sections[-1][1].append(_Block("table", s, lines[j - 1][1]))
            i = j
            continue
        if not line.strip():
            close_paragraph(s)
        elif para_start is None:
            para_start = s
        i += 1
    close_paragraph(len(text))
    return [(path, blocks) for path, blocks in sections if blocks]

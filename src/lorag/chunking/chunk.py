"""``Chunk``: one piece of a source text, with exact character offsets back into that text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Chunk:
    """A piece of a source text.

    Whitespace rule: every splitter strips the whitespace around each chunk (``str.strip``), and the offsets
    point at the stripped text, so ``source[chunk.start:chunk.end] == chunk.text`` always holds, and every
    non-whitespace character of the source lies inside at least one chunk.

    Attributes:
        text: the chunk's text, exactly ``source[start:end]``.
        start: character offset of the first character in the source.
        end: character offset one past the last character.
        index: position of the chunk in the splitter's output for this source (0-based).
        token_count: number of tokens of ``text`` in the splitter's tokenizer (no special tokens); ``None``
            when the splitter measures characters.
        metadata: the caller's metadata (e.g. ``source``) plus what the splitter adds (e.g. ``header_path``).
    """

    text: str
    start: int
    end: int
    index: int
    token_count: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.end - self.start

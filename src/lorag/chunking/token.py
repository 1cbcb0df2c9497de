"""Token windows: chunks of at most N tokens of a given tokenizer, cut with its offset mapping.

Windows never cut inside a character (byte-level tokenizers may spend several tokens on one character), and each
window's text is re-tokenized and shrunk if it tokenizes longer alone than inside the document, so the limit holds
for the chunk text itself, which is what an embedder sees.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.length import TokenLength

_NON_SPACE = re.compile(r"\S")


def token_windows(
    text: str,
    length: TokenLength,
    size: int,
    overlap: int,
    start: int = 0,
    end: int | None = None,
    *,
    max_chars: int | None = None,
) -> Iterator[tuple[int, int, int]]:
    """``(start, end, token_count)`` of stripped windows over ``text[start:end]``, each at most ``size`` tokens.

    A window only exceeds ``size`` when a single character needs more tokens than that; the caller flags it. With
    ``max_chars``, the text is tokenized ``max_chars`` characters at a time (memory stays bounded) and no window
    spans more: a window that reaches the end of such a segment is started again in the next one.
    """
    end = len(text) if end is None else end
    segment = max_chars or max(end - start, 1)
    pos, last_end = start, -1
    while pos < end:
        seg_end = min(end, pos + segment)
        pos, last_end = yield from _segment_windows(text, length, size, overlap, pos, seg_end, seg_end == end, last_end)


def _segment_windows(
    text: str, length: TokenLength, size: int, overlap: int, start: int, end: int, final: bool, last_end: int
) -> Generator[tuple[int, int, int], None, tuple[int, int]]:
    """The windows of one segment; returns where the next segment starts and the end of the last window."""
    piece = text[start:end]
    offs = length.offsets(piece)
    n_tok = len(offs)
    if n_tok == 0:
        lo, hi = strip_span(piece, 0, len(piece))
        if hi > lo:
            yield start + lo, start + hi, length(piece[lo:hi])
            last_end = start + hi
        return end, last_end

    def clean(b: int) -> bool:
        return b <= 0 or b >= n_tok or offs[b - 1][1] <= offs[b][0]

    def left(a: int) -> int:
        return offs[a - 1][1] if a > 0 else 0

    def right(b: int) -> int:
        return max(offs[b][0], offs[b - 1][1]) if b < n_tok else len(piece)

    def first_text(pos: int) -> int:
        found = _NON_SPACE.search(piece, pos)
        return found.start() if found else len(piece)

    a = 0
    while a < n_tok:
        b = min(a + size, n_tok)
        if b == n_tok and not final and left(a) > 0:
            return start + left(a), last_end  # the segment's end may have cut this window short
        while b > a and not clean(b):
            b -= 1
        if b == a:  # one character needs more than `size` tokens: keep it whole
            b = a + 1
            while not clean(b):
                b += 1
        lo, hi = strip_span(piece, left(a), right(b))
        count = length(piece[lo:hi])
        while count > size:
            smaller = b - 1
            while smaller > a and not clean(smaller):
                smaller -= 1
            if smaller <= a:
                break
            b = smaller
            lo, hi = strip_span(piece, left(a), right(b))
            count = length(piece[lo:hi])
        fresh = hi > lo and start + hi > last_end  # skip windows adding only whitespace
        if fresh:
            yield start + lo, start + hi, count
            last_end = start + hi
        if b >= n_tok:
            break
        nxt = max(b - overlap, a + 1)
        while nxt < b and not clean(nxt):
            nxt += 1
        if fresh:  # the next chunk must start later and repeat at most `overlap` tokens of this one
            while nxt < b and ((nxt_lo := first_text(left(nxt))) <= lo or length(piece[nxt_lo:hi]) > overlap):
                nxt += 1
                while nxt < b and not clean(nxt):
                    nxt += 1
        a = nxt
    return end, last_end


class TokenSplitter(Splitter):
    """Exact windows of ``chunk_size`` tokens, each starting ``chunk_size - chunk_overlap`` tokens after the last.

    Args:
        chunk_size: tokens per window.
        chunk_overlap: tokens shared by consecutive windows (at most).
        tokenizer: required; a model reference, a fast ``transformers`` tokenizer or a ``TokenLength``.
    """

    method = "token"

    def __init__(self, chunk_size: int = 256, chunk_overlap: int = 0, *, tokenizer: Any = None) -> None:
        if tokenizer is None:
            raise ValueError(
                "the token splitter needs a tokenizer: pass tokenizer='minilm' (or any model reference or "
                "transformers tokenizer), or use method='recursive' to measure characters"
            )
        super().__init__(chunk_size, chunk_overlap, tokenizer=tokenizer)
        assert isinstance(self.length, TokenLength)
        if not self.length.has_offsets:
            raise ValueError(f"the token splitter needs a fast tokenizer with offsets; {self.length!r} has none")

    def _pieces(self, text: str) -> list[Piece]:
        assert isinstance(self.length, TokenLength)
        windows = token_windows(text, self.length, self.chunk_size, self.chunk_overlap, max_chars=self.max_chars)
        return [(s, e, {}) for s, e, _ in windows]

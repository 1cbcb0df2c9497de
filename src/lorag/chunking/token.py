"""Token windows: chunks of at most N tokens of a given tokenizer, cut with its offset mapping.

Windows never cut inside a character (byte-level tokenizers may spend several tokens on one character), and each
window's text is re-tokenized and shrunk if it tokenizes longer alone than inside the document, so the limit holds
for the chunk text itself, which is what an embedder sees.
"""

from __future__ import annotations

from typing import Any

from lorag.chunking.base import Piece, Splitter, strip_span
from lorag.chunking.length import TokenLength


def token_windows(
    text: str, length: TokenLength, size: int, overlap: int, start: int = 0, end: int | None = None
) -> list[tuple[int, int, int]]:
    """``(start, end, token_count)`` of stripped windows over ``text[start:end]``, each at most ``size`` tokens.

    A window only exceeds ``size`` when a single character needs more tokens than that; the caller flags it.
    """
    piece = text[start:end]
    offs = length.offsets(piece)
    n_tok = len(offs)
    if n_tok == 0:
        lo, hi = strip_span(piece, 0, len(piece))
        return [(start + lo, start + hi, length(piece[lo:hi]))] if hi > lo else []

    def clean(b: int) -> bool:
        return b <= 0 or b >= n_tok or offs[b - 1][1] <= offs[b][0]

    def left(a: int) -> int:
        return offs[a - 1][1] if a > 0 else 0

    def right(b: int) -> int:
        return max(offs[b][0], offs[b - 1][1]) if b < n_tok else len(piece)

    out: list[tuple[int, int, int]] = []
    a = 0
    while a < n_tok:
        b = min(a + size, n_tok)
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
        fresh = hi > lo and (not out or start + hi > out[-1][1])  # skip windows adding only whitespace
        if fresh:
            out.append((start + lo, start + hi, count))
        if b >= n_tok:
            break
        nxt = max(b - overlap, a + 1)
        while nxt < b and not clean(nxt):
            nxt += 1
        if fresh:  # the next chunk must start later and repeat at most `overlap` tokens of this one
            while nxt < b and (
                (nxt_lo := strip_span(piece, left(nxt), len(piece))[0]) <= lo or length(piece[nxt_lo:hi]) > overlap
            ):
                nxt += 1
                while nxt < b and not clean(nxt):
                    nxt += 1
        a = nxt
    return out


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
        return [(s, e, {}) for s, e, _ in token_windows(text, self.length, self.chunk_size, self.chunk_overlap)]

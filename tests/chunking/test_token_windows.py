"""Token windows hold exactly N tokens where the text allows, overlap by the requested tokens, and map back."""

from __future__ import annotations

import itertools

from lorag.chunking import TokenLength, TokenSplitter

TEXT = " ".join(f"word{i % 7} of the quick brown fox number {i}." for i in range(60))


def test_windows_are_full_and_step_by_size_minus_overlap(tiny_tokens: TokenLength) -> None:
    chunks = TokenSplitter(32, 8, tokenizer=tiny_tokens).split(TEXT)
    assert len(chunks) > 5
    assert all(c.token_count == tiny_tokens(c.text) <= 32 for c in chunks)
    # On plain ASCII prose every window but the last is (nearly) full: at most a token lost to re-tokenization.
    assert min(c.token_count for c in chunks[:-1]) >= 30
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.start < prev.end
        assert 0 < tiny_tokens(TEXT[nxt.start : prev.end]) <= 8


def test_multibyte_characters_are_never_cut(tiny_tokens: TokenLength) -> None:
    text = "日本語のテキスト🙂🙂 " * 40
    chunks = TokenSplitter(9, 0, tokenizer=tiny_tokens).split(text)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    assert all(tiny_tokens(c.text) <= 9 for c in chunks)


def test_characters_the_tokenizer_drops_are_still_covered(tiny_st_dir: object) -> None:
    # WordPiece normalisation drops control characters; they still belong to a chunk.
    text = "alpha\x00beta " * 30
    chunks = TokenSplitter(8, 2, tokenizer=str(tiny_st_dir)).split(text)
    covered = set()
    for c in chunks:
        assert text[c.start : c.end] == c.text
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())

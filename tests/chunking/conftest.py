from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from lorag.chunking import Chunk, TokenLength, make_length


@pytest.fixture(scope="session")
def tiny_tokens(tiny_llm_dir: Path) -> TokenLength:
    """Token lengths in the tiny Llama's byte-level BPE (any unicode tokenizes; up to 4 tokens per character)."""
    return TokenLength(str(tiny_llm_dir))


@pytest.fixture(scope="session")
def check_chunks() -> Callable[..., None]:
    """Assert the splitter contract on one output (see the whitespace rule in ``lorag.chunking``)."""

    def check(source: str, chunks: list[Chunk], size: int, overlap: int, tokenizer: object = None) -> None:
        length = make_length(tokenizer)
        assert chunks, "a non-empty text gives at least one chunk"
        for i, c in enumerate(chunks):
            assert c.index == i
            assert source[c.start : c.end] == c.text
            assert c.text and c.text == c.text.strip()
            assert length(c.text) <= size, (length(c.text), size, c.text)
            assert c.token_count == (length(c.text) if isinstance(length, TokenLength) else None)
        assert not source[: chunks[0].start].strip()
        assert not source[chunks[-1].end :].strip()
        for prev, nxt in itertools.pairwise(chunks):
            assert prev.start < nxt.start and prev.end < nxt.end, "chunks move forward"
            if nxt.start >= prev.end:
                assert not source[prev.end : nxt.start].strip(), "only whitespace between chunks"
            else:
                assert length(source[nxt.start : prev.end]) <= overlap, "overlap within bounds"

    return check

"""Property tests: the splitter contract holds on arbitrary text, unicode included, for every splitter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorag.chunking import TokenLength, make_splitter
from tests.chunking.fakes import fake_embed

WORDS = st.sampled_from(
    ["the", "Dr.", "3.14", "año", "niño", "über", "日本語", "emoji🙂", "Sr.", "e.g.", "x", "naïve", "ﬁ", "İ"]
)
SEPS = st.sampled_from([" ", "  ", "\n", "\n\n", ". ", "? ", "\t", "\u00a0", "\u3000", "# ", "```\n", "| a |\n"])
STRUCTURED = st.lists(st.one_of(WORDS, SEPS), min_size=1, max_size=120).map("".join)
ANY_UNICODE = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300)
TEXTS = st.one_of(STRUCTURED, ANY_UNICODE).filter(lambda t: t.strip() != "")

METHODS = ["recursive", "sentence", "markdown", "semantic"]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _splitter(method: str, size: int, overlap: int, tokenizer: Any) -> Any:
    if method == "semantic":
        return make_splitter(method, size, 0, tokenizer=tokenizer, embedder=fake_embed, min_chunk_size=size // 4)
    return make_splitter(method, size, overlap, tokenizer=tokenizer)


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(text=TEXTS, size=st.integers(1, 60), overlap_share=st.floats(0, 0.9))
def test_character_chunks_keep_contract(
    check_chunks: Callable[..., None], method: str, text: str, size: int, overlap_share: float
) -> None:
    overlap = 0 if method == "semantic" else int(size * overlap_share)
    splitter = _splitter(method, size, overlap, None)
    chunks = splitter.split(text)
    check_chunks(text, chunks, size, overlap)
    assert splitter.split(text) == chunks, "deterministic"


@pytest.mark.parametrize("method", [*METHODS, "token"])
@FAST
@given(text=TEXTS, size=st.integers(8, 40), overlap_share=st.floats(0, 0.9))
def test_token_chunks_keep_contract(
    check_chunks: Callable[..., None], tiny_tokens: TokenLength, method: str, text: str, size: int, overlap_share: float
) -> None:
    # 8 tokens is the floor: a byte-level tokenizer may spend 4 tokens on one character.
    overlap = 0 if method == "semantic" else int(size * overlap_share)
    splitter = _splitter(method, size, overlap, tiny_tokens)
    chunks = splitter.split(text)
    check_chunks(text, chunks, size, overlap, tiny_tokens)
    assert splitter.split(text) == chunks, "deterministic"


@pytest.mark.parametrize("preset", ["default", "markdown", "python"])
@FAST
@given(text=TEXTS, size=st.integers(1, 60))
def test_recursive_presets_keep_contract(check_chunks: Callable[..., None], preset: str, text: str, size: int) -> None:
    chunks = make_splitter("recursive", size, size // 3, preset=preset).split(text)
    check_chunks(text, chunks, size, size // 3)

"""The RAG prompt: numbered blocks, best first, never overflowing the window."""

from __future__ import annotations

import pytest

from lorag.rag.prompt import NO_ANSWER, ContextBlock, build_rag_prompt, cited_numbers


def _words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) + 4 for m in messages)


BLOCKS = [ContextBlock(f"block {i} " + "word " * 20, f"doc{i}.md", score=1 - i / 10) for i in range(6)]


def test_blocks_numbered_best_first_with_sources() -> None:
    prompt = build_rag_prompt("What?", BLOCKS[:2], count_tokens=_words, context_window=500, max_new_tokens=50)
    user = prompt.messages[-1]["content"]
    assert user.index("[1] doc0.md") < user.index("[2] doc1.md") < user.index("Question: What?")
    assert NO_ANSWER in prompt.messages[0]["content"]


@pytest.mark.parametrize("window", [120, 150, 200, 300])
def test_never_overflows_and_keeps_the_best(window: int) -> None:
    prompt = build_rag_prompt("What?", BLOCKS, count_tokens=_words, context_window=window, max_new_tokens=40)
    assert _words(prompt.messages) <= window - 40
    assert prompt.blocks == BLOCKS[: len(prompt.blocks)]


def test_errors() -> None:
    with pytest.raises(ValueError, match="question is empty"):
        build_rag_prompt("  ", BLOCKS, count_tokens=_words, context_window=500, max_new_tokens=10)
    with pytest.raises(ValueError, match="question alone needs more"):
        build_rag_prompt("a b c", BLOCKS, count_tokens=_words, context_window=30, max_new_tokens=10)


def test_cited_numbers() -> None:
    assert cited_numbers("Yes [2], see [1] and [2] and [9].", 3) == [2, 1]

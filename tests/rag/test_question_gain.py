"""``lorag.rag.question_gain``: the four gate inputs by hand, the prompts the model reads, and a real engine's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lorag.rag.question_gain import MAX_PASSAGE_TOKENS, QUESTION_CUE, QuestionGain, gain_features


def test_gain_features_by_hand() -> None:
    alone = [-2.0, -4.0]  # mean -3
    after = [[-1.0, -1.0], [-3.0, -5.0]]  # mean gains 2 and -1; best one-token gains 3 and -1
    assert gain_features(alone, after) == pytest.approx([2.0, 2.0, -1.0, 3.0])
    assert gain_features(alone, after[::-1]) == pytest.approx([2.0, -1.0, -1.0, 3.0])  # the first passage's moves
    with pytest.raises(ValueError, match="at least one passage"):
        gain_features(alone, [])


class Tokenizer:
    """One token per character, so the prompts are easy to read back."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def test_the_model_reads_each_passage_then_the_question_and_the_question_alone() -> None:
    seen: list[tuple[str, str]] = []

    def score(prompt: list[int], continuation: list[int]) -> list[float]:
        seen.append(("".join(map(chr, prompt)), "".join(map(chr, continuation))))
        return [-1.0 if prompt[: len(QUESTION_CUE)] != [ord(c) for c in QUESTION_CUE] else -2.0] * len(continuation)

    long = "x" * (MAX_PASSAGE_TOKENS + 50) + "end."
    features = QuestionGain(Tokenizer(), score).features("Why?", ["A passage.", long])
    assert seen == [
        (QUESTION_CUE, " Why?"),
        ("A passage." + QUESTION_CUE, " Why?"),
        (long[-MAX_PASSAGE_TOKENS:] + QUESTION_CUE, " Why?"),  # the passage's last tokens
    ]
    assert features == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert QuestionGain(Tokenizer(), score).features("Why?", []) is None
    assert QuestionGain(Tokenizer(), lambda p, c: None).features("Why?", ["A passage."]) is None


def test_of_engine_needs_an_engine_that_scores_tokens(tiny_llm_dir: Path) -> None:
    from lorag.llm import LoragEngine

    assert QuestionGain.of_engine(object()) is None
    engine = LoragEngine(tiny_llm_dir, quantization="none")
    try:
        gain = QuestionGain.of_engine(engine)
        assert gain is not None
        alone, after = gain.logprobs("When did it open?", ["It opened in 1937.", "Cable cars."]) or ([], [])
        question = engine.tokenizer(" When did it open?", add_special_tokens=False)["input_ids"]
        cue = engine.tokenizer(QUESTION_CUE, add_special_tokens=False)["input_ids"]
        assert alone == pytest.approx(engine.token_logprobs(cue, question) or [])  # the base: no adapter
        assert len(after) == 2 and all(len(a) == len(question) for a in after)
        features: Any = gain.features("When did it open?", ["It opened in 1937.", "Cable cars."])
        assert features == pytest.approx(gain_features(alone, after))
    finally:
        engine.close()

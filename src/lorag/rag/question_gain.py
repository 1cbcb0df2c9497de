"""Does the model find the question likelier after a passage? Four answerability gate inputs from the model itself.

A SQuAD-style question is written while reading its paragraph, so that paragraph makes the question's words
predictable; another paragraph of the same article, which is all a question about missing text finds, makes them
less so. The answering model's base (no adapter: the grounded adapter was trained to answer, not to read) reads
``passage + "\\nQuestion:" + " " + question`` for each passage in the prompt, and ``"\\nQuestion:" + " " + question``
alone; the question tokens' log-probabilities give, per passage, the mean gain over the question alone (pointwise
mutual information). The inputs (``GAIN_FEATURES``): the largest gain, the first passage's, the smallest, and the
largest gain of a single token. Added to the gate's six, they raised held-out abstention recall at 88% of answerable
questions answered from 0.705 to 0.745 on SQuAD train-article questions (``benchmarks/answerability_pmi.py``,
``rag_defaults.md`` section 20), for one forward pass per passage and one for the question.

Only an engine that can teacher-force tokens (``LoragEngine.token_logprobs``, ``LlamaCppEngine.token_logprobs``)
gives them; with another (a remote engine, another framework's model) the gate reads its six features alone
(``answerability_gate.json``). The shipped gate was fit on the float32 base, the precision the grounded adapter runs
at; a base loaded in 4 or 8 bits reads somewhat different numbers (llama.cpp's Q8_0 copy: 0.04 from the float32
inputs on average, ``rag_defaults.md`` section 22).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: The inputs, in the order the gate's file lists them after ``answerability.FEATURES``.
GAIN_FEATURES = ("gain_best", "gain_first", "gain_worst", "token_gain_best")
#: Passage tokens kept (the last ones) in front of the question.
MAX_PASSAGE_TOKENS = 400
#: What stands between a passage and the question.
QUESTION_CUE = "\nQuestion:"

TokenLogprobs = Callable[[list[int], list[int]], "list[float] | None"]


def gain_features(alone: Sequence[float], after: Sequence[Sequence[float]]) -> list[float]:
    """``GAIN_FEATURES`` from the question's token log-probabilities alone and after each passage (same tokens)."""
    if not alone or not after:
        raise ValueError("gain_features needs the question's tokens and at least one passage")
    mean = sum(alone) / len(alone)
    gains = [sum(p) / len(p) - mean for p in after]
    token_gains = [max(a - b for a, b in zip(p, alone, strict=True)) for p in after]
    return [max(gains), gains[0], min(gains), max(token_gains)]


@dataclass(frozen=True)
class QuestionGain:
    """Scores a question after each passage with ``token_logprobs(prompt_ids, continuation_ids)`` on the base."""

    tokenizer: Any
    token_logprobs: TokenLogprobs

    @classmethod
    def of_engine(cls, engine: Any) -> QuestionGain | None:
        """From an engine with ``token_logprobs`` and a tokenizer (``LoragEngine``, ``LlamaCppEngine``); None for one
        without."""
        score = getattr(engine, "token_logprobs", None)
        tokenizer = getattr(engine, "tokenizer", None)
        if not callable(score) or tokenizer is None:
            return None
        return cls(tokenizer, lambda prompt, continuation: score(prompt, continuation, adapter=None))

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def logprobs(self, question: str, passages: Sequence[str]) -> tuple[list[float], list[list[float]]] | None:
        """The question tokens' log-probabilities alone and after each passage; None when the engine cannot score."""
        question_ids, cue = self._ids(" " + question), self._ids(QUESTION_CUE)
        scored = []
        for passage in ["", *passages]:
            context = self._ids(passage)[-MAX_PASSAGE_TOKENS:] if passage else []
            scores = self.token_logprobs(context + cue, question_ids)
            if scores is None:
                return None
            scored.append(scores)
        return scored[0], scored[1:]

    def features(self, question: str, passages: Sequence[str]) -> list[float] | None:
        """``GAIN_FEATURES`` of the passages; None when the engine cannot score or there is no passage."""
        if not passages or not question.strip():
            return None
        scored = self.logprobs(question, passages)
        return None if scored is None else gain_features(*scored)

"""Run a RAG pipeline over a questions file, one question at a time as ``lorag ask`` would, and score the answers.

A question counts as abstained when ``Answer.abstained`` says so: the relevance gate declined, or the model replied
that the documents do not contain the answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from lorag.evaluation.answers import Metrics, QAPrediction, QAQuestion, score_answers
from lorag.rag.pipeline import Answer


class Asker(Protocol):
    """What the evaluation needs from a pipeline (``lorag.rag.pipeline.RagPipeline`` satisfies it)."""

    def ask(self, question: str) -> Answer: ...


@dataclass
class RagEvalReport:
    """The metrics of ``score_answers`` and each question's prediction, in question order."""

    metrics: Metrics
    predictions: list[QAPrediction]

    def to_json(self) -> dict[str, Any]:
        """``lorag eval-rag --json``: the metrics as top-level keys, and ``"questions"`` the per-question list
        (it takes the place of the ``questions`` count, which is its length)."""
        metrics = {key: value for key, value in self.metrics.items() if key != "questions"}
        return {**metrics, "questions": [asdict(p) for p in self.predictions]}


def predict(pipeline: Asker, question: QAQuestion) -> QAPrediction:
    """Ask one question, timing the whole call (retrieval, prompt fitting and generation)."""
    start = time.perf_counter()
    try:
        answer = pipeline.ask(question.question)
    except ValueError as err:
        raise ValueError(f"question {question.id!r}: {err}") from err
    seconds = time.perf_counter() - start
    return QAPrediction(
        id=question.id,
        answer=answer.answer,
        abstained=answer.abstained,
        sources=[asdict(s) for s in answer.sources],
        seconds=seconds,
        completion_tokens=answer.usage.get("completion_tokens", 0),
        abstain_probability=answer.abstain_probability,
        declined=answer.declined_json(),
    )


def evaluate_rag(pipeline: Asker, questions: Sequence[QAQuestion], *, progress: bool = True) -> RagEvalReport:
    """Answer every question with ``pipeline`` in order (a tqdm bar on stderr unless ``progress`` is False)."""
    from tqdm.auto import tqdm

    predictions = [predict(pipeline, q) for q in tqdm(questions, desc="questions", unit="q", disable=not progress)]
    return RagEvalReport(score_answers(questions, predictions), predictions)

"""``evaluate_rag`` with a fake pipeline: what it asks, how answers become predictions, the ``--json`` shape."""

from __future__ import annotations

import json

import pytest

from lorag.evaluation import QAQuestion, evaluate_rag
from lorag.rag.composition import Declined
from lorag.rag.pipeline import Answer, Source


def _source(number: int, source: str, cited: bool) -> Source:
    return Source(number=number, source=source, text=f"text of {source}", start=0, end=10, score=0.5, cited=cited)


class CannedPipeline:
    """Answers each question with a prepared ``Answer`` and records the questions asked."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def ask(self, question: str) -> Answer:
        self.asked.append(question)
        answer = self.answers[question]
        if not answer.answer:
            raise ValueError("no retrieved passage fits the model's window")
        return answer


QUESTIONS = [
    QAQuestion("q1", "Which port?", ["8000"], ["notes.txt"]),
    QAQuestion("q2", "Moon?", [], []),
]


def _pipeline() -> CannedPipeline:
    return CannedPipeline(
        {
            "Which port?": Answer(
                "Which port?",
                "Port 8000 [1].",
                [_source(1, "notes.txt", True), _source(2, "tasks.md", False)],
                usage={"prompt_tokens": 50, "completion_tokens": 6},
            ),
            "Moon?": Answer(
                "Moon?",
                "The documents do not contain the answer.",
                [],
                abstained=True,
                declined=Declined("answerability", "P(answerable) 0.1 is below min_answerability 0.55", 0.1),
                declined_passages=[_source(1, "tasks.md", False)],
            ),
        }
    )


def test_predictions_and_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = _pipeline()
    report = evaluate_rag(pipeline, QUESTIONS, progress=False)
    assert pipeline.asked == ["Which port?", "Moon?"]
    first, second = report.predictions
    assert (first.id, first.answer, first.abstained, first.completion_tokens) == ("q1", "Port 8000 [1].", False, 6)
    assert first.sources[0] == {**first.sources[0], "number": 1, "source": "notes.txt", "cited": True}
    assert second.abstained and second.completion_tokens == 0 and second.sources == []
    assert first.seconds >= 0 and second.seconds >= 0
    assert report.metrics["contains_gold"] == 1.0 and report.metrics["abstention_recall"] == 1.0

    payload = json.loads(json.dumps(report.to_json()))
    assert [q["id"] for q in payload["questions"]] == ["q1", "q2"]  # the list, not the count
    assert list(payload)[-1] == "questions"  # metrics first, readable at the top of a long output
    assert {"id", "answer", "abstained", "sources"} <= set(payload["questions"][0])
    assert {"source", "text", "cited"} <= set(payload["questions"][0]["sources"][0])
    assert payload["questions"][0]["declined"] is None  # the model was asked
    declined = payload["questions"][1]["declined"]  # what the gate read, to judge the decline by
    assert (declined["gate"], declined["score"], [p["source"] for p in declined["passages"]]) == (
        "answerability",
        0.1,
        ["tasks.md"],
    )
    assert {k: payload[k] for k in ("answerable", "unanswerable", "citation_precision")} == {
        "answerable": 1,
        "unanswerable": 1,
        "citation_precision": 1.0,
    }
    assert capsys.readouterr().err == ""  # no progress bar when told


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate_rag(_pipeline(), QUESTIONS, progress=True)
    captured = capsys.readouterr()
    assert "2/2" in captured.err and captured.out == ""


def test_a_failing_question_is_named() -> None:
    pipeline = CannedPipeline({"Which port?": Answer("Which port?", "")})
    with pytest.raises(ValueError, match=r"question 'q1': no retrieved passage fits"):
        evaluate_rag(pipeline, QUESTIONS[:1], progress=False)

"""``score_answers`` against metrics computed by hand, and the SQuAD text metrics it builds on."""

from __future__ import annotations

from typing import Any

import pytest

from lorag.evaluation import (
    QAPrediction,
    QAQuestion,
    contains_answer,
    exact_match,
    f1_score,
    normalize_answer,
    score_answers,
    strip_citations,
)


def _src(source: str, cited: bool) -> dict[str, Any]:
    return {"source": source, "text": "...", "cited": cited}


QUESTIONS = [
    QAQuestion("q1", "Which port?", ["port 8000"], ["notes.txt"]),
    QAQuestion("q2", "What allows CORS?", ["CORS middleware", "the CORS middleware"], ["guide/cors.md"]),
    QAQuestion("q3", "When do tasks run?", ["after the response is sent"], ["tasks.md"]),
    QAQuestion("q4", "Default port?", ["8000"], ["notes.txt"]),
    QAQuestion("q5", "What is the moon made of?", [], []),
    QAQuestion("q6", "Who won the 1998 World Cup?", [], []),
]

PREDICTIONS = [
    # "server listens on port 8000" vs "port 8000": EM 0; F1: 2 common, P 2/5, R 2/2 -> 2*0.4*1/1.4 = 4/7;
    # contains 1. Cites its one supporting passage.
    QAPrediction(
        "q1", "The server listens on port 8000 [1].", False, [_src("notes.txt", True), _src("tasks.md", False)], 2.0, 10
    ),
    # "[2][3]" stripped -> "CORS middleware": EM 1, F1 1, contains 1. Cites 2 passages, 1 from a supporting file.
    QAPrediction(
        "q2",
        "CORS middleware [2][3]",
        False,
        [_src("guide/cors.md", False), _src("tasks.md", True), _src("guide/cors.md", True)],
        4.0,
        4,
    ),
    # "background tasks run later" vs "after response is sent": no common token: EM 0, F1 0, contains 0. Cites
    # nothing, and its prompt held no supporting passage (not in the citation-recall base).
    QAPrediction("q3", "Background tasks run later.", False, [_src("notes.txt", False)], 1.0, 6),
    # Answerable but abstained (gated, no prompt): scores 0 everywhere.
    QAPrediction("q4", "The documents do not contain the answer.", True, [], 0.5, 0),
    # Unanswerable, abstained: right.
    QAPrediction("q5", "The documents do not contain the answer.", True, [], 0.5, 0),
    # Unanswerable, answered: its citation does not count towards citation precision (no supporting files).
    QAPrediction("q6", "Brazil [1].", False, [_src("notes.txt", True)], 2.0, 10),
]


def test_metrics_match_the_hand_computed_values() -> None:
    m = score_answers(QUESTIONS, PREDICTIONS)
    assert (m["questions"], m["answerable"], m["unanswerable"]) == (6, 4, 2)
    assert m["exact_match"] == pytest.approx((0 + 1 + 0 + 0) / 4)
    assert m["f1"] == pytest.approx((4 / 7 + 1 + 0 + 0) / 4)
    assert m["contains_gold"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert m["answered_rate"] == pytest.approx(3 / 4)  # q1, q2, q3 of the 4 answerable
    assert m["cited_rate"] == pytest.approx(2 / 3)  # q1, q2 of the 3 answered
    assert m["citation_precision"] == pytest.approx((1 + 1) / (1 + 2))  # supporting cited / cited, q1 and q2
    assert m["citation_recall"] == pytest.approx(2 / 2)  # q1, q2 had a supporting passage and cited one
    assert m["supporting_in_prompt"] == pytest.approx(2 / 4)  # q1, q2 of the 4 answerable
    assert m["abstention_precision"] == pytest.approx(1 / 2)  # abstained: q4, q5; unanswerable: q5
    assert m["abstention_recall"] == pytest.approx(1 / 2)  # unanswerable: q5, q6; abstained: q5
    # seconds sorted 0.5 0.5 1 2 2 4: p50 at rank 2.5 -> (1+2)/2; p95 at rank 4.75 -> 2 + 0.75*(4-2)
    assert m["latency_p50_s"] == pytest.approx(1.5)
    assert m["latency_p95_s"] == pytest.approx(3.5)
    assert m["tokens_per_s"] == pytest.approx(30 / 10)  # 10+4+6+0+0+10 tokens in 2+4+1+0.5+0.5+2 s


def test_rates_without_a_denominator_are_none_not_zero() -> None:
    answerable = [QAQuestion("a", "?", ["x"], ["f.md"]), QAQuestion("b", "?", ["y"], ["f.md"])]
    uncited = [QAPrediction(q.id, "x", False, [_src("g.md", False)], 1.0, 1) for q in answerable]
    m = score_answers(answerable, uncited)
    assert m["citation_precision"] is None and m["cited_rate"] == 0.0  # nothing cited
    assert m["citation_recall"] is None  # no prompt held a supporting passage
    assert m["abstention_precision"] is None and m["abstention_recall"] is None  # none abstained, none unanswerable

    silent = [QAPrediction(q.id, "", True, [], 0.0, 0) for q in answerable]
    m = score_answers(answerable, silent)
    assert m["exact_match"] == 0.0 and m["answered_rate"] == 0.0
    assert m["cited_rate"] is None and m["tokens_per_s"] is None  # nothing answered; no time spent

    unanswerable = [QAQuestion("u", "?", [], [])]
    m = score_answers(unanswerable, [QAPrediction("u", "no", True, [], 1.0, 0)])
    assert m["exact_match"] is None and m["f1"] is None and m["supporting_in_prompt"] is None
    assert m["abstention_precision"] == 1.0 and m["abstention_recall"] == 1.0


def test_questions_without_supporting_files_stay_out_of_citation_and_retrieval_metrics() -> None:
    questions = [QAQuestion("a", "?", ["x"], ["f.md"]), QAQuestion("b", "?", ["y"], [])]
    predictions = [
        QAPrediction("a", "x [1]", False, [_src("f.md", True)], 1.0, 1),
        QAPrediction("b", "y [1]", False, [_src("g.md", True)], 1.0, 1),
    ]
    m = score_answers(questions, predictions)
    assert m["citation_precision"] == 1.0 and m["supporting_in_prompt"] == 1.0  # b would have made both 1/2
    assert m["cited_rate"] == 1.0 and m["exact_match"] == 1.0


def test_predictions_must_match_the_questions() -> None:
    with pytest.raises(ValueError, match="one to one"):
        score_answers(QUESTIONS, PREDICTIONS[:-1])
    with pytest.raises(ValueError, match="one to one"):
        score_answers(QUESTIONS[:1], [PREDICTIONS[0], PREDICTIONS[0]])


def test_squad_normalisation() -> None:
    assert normalize_answer("The  CORS-Middleware, of course!") == "corsmiddleware of course"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theme") == "theme"  # articles only as whole words


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Port 8000 [1].", "Port 8000."),
        ("Port 8000 [1, 2].", "Port 8000."),
        ("Port 8000 [1][12]", "Port 8000"),
        ("Use [1] the middleware [3].", "Use the middleware."),
        ("A list [a] and [1-2] stay", "A list [a] and [1-2] stay"),
    ],
)
def test_strip_citations(text: str, stripped: str) -> None:
    assert strip_citations(text) == stripped


def test_text_metrics() -> None:
    assert exact_match("the Port 8000.", "port 8000") == 1.0
    assert exact_match("port 8000 [1]", "port 8000") == 0.0  # callers strip citations first: "1" is a token
    assert f1_score("port 8000 by default", "port 8000") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert f1_score("nothing", "port 8000") == 0.0
    assert contains_answer("It listens on port 8000.", "Port 8000") == 1.0
    assert contains_answer("It listens on port 80000.", "8000") == 0.0  # word boundaries
    assert contains_answer("The!", "the") == 1.0 and contains_answer("a cat", "the") == 0.0  # empty gold: whole text

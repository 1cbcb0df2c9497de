"""Does checking the generated answer against the passages help the answerability gate? (``rag_defaults.md`` 20)

The gate (``lorag.rag.answerability``) decides before the model answers. An answer to an unanswerable question is
often a span of a sentence that lacks what the question asks ("How many refugees emigrated to the Dutch Republic?"
answered "four thousand" from "Four thousand emigrated to the North American colonies"), or words no passage holds.
This reads two ``lorag eval-rag --json`` runs over one questions file: the defaults, and the questions they declined
rerun with ``--min-answerability 0.000001`` (the gate still on, so the no-answer reply is still banned, but passing
everything), so each question has the answer it would get at any lower threshold. For every answer it computes the
six-input gate's ``P(answerable)`` from the sources, as the pipeline did when section 20 was measured (at
``e240eb6``; since section 21 a local engine's gate also reads the model's question gain, so reproduce with the runs
of that commit), and, with the index's tokenizer:

- ``overlap``: the share of the answer's terms (citations removed) found in the one sentence of the passages that
  holds most of them (1 when the answer has no term: nothing to check);
- ``answer_window``: the IDF-weighted share of the question's terms in that sentence and its neighbours (the
  gate's ``window`` feature, at the answer instead of at the best window).

It prints answered rate / abstention recall (over the file's answerable / unanswerable questions) for gate
thresholds with and without a check on the answer, and, from a logistic regression over ``logit P`` and the answer
features (10-fold cross-validated), the best recall at the answered rates a threshold can keep.

Usage (from the repository root; a minute, the runs themselves take longer)::

    PYTHONPATH=src:integrations python -m lorag eval-rag --docs D/docs --questions D/questions.jsonl \\
        --index-dir D-index --json > shipped.json
    # the questions shipped.json declined, as D-declined.jsonl, then
    PYTHONPATH=src:integrations python -m lorag eval-rag --docs D/docs --questions D-declined.jsonl \\
        --index-dir D-index --min-answerability 0.000001 --json > declined.json
    PYTHONPATH=src python benchmarks/answer_support.py --questions D/questions.jsonl --index-dir D-index \\
        --answers shipped.json declined.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag.evaluation.answers import strip_citations
from lorag.rag.answerability import (
    AnswerabilityGate,
    SentenceSimilarity,
    TermStatistics,
    question_weights,
    split_sentences,
)

THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6)
ANSWERED_RATES = (0.9, 0.88, 0.86, 0.85)
MIN_ANSWER_WINDOW = 0.2
#: What each question of an eval-rag --json output must hold here.
RUN_KEYS = {"id", "abstained", "answer", "sources"}


@dataclass(frozen=True)
class Answered:
    """One answered question: 1 if the documents hold its answer, the gate's probability, the answer's checks."""

    label: int
    probability: float
    overlap: float
    answer_window: float


def answer_checks(question: str, answer: str, passages: list[str], terms: TermStatistics) -> tuple[float, float]:
    """(``overlap``, ``answer_window``) of ``answer`` in ``passages``, as the module docstring defines them."""
    weight = question_weights(question, terms)
    total = sum(weight.values()) or 1.0
    answer_terms = set(terms.tokenize(strip_citations(answer)))
    best = (-1.0, 0.0)
    for text in passages:
        sentences = [set(terms.tokenize(s)) for s in split_sentences(text)]
        for i, sentence in enumerate(sentences):
            overlap = len(answer_terms & sentence) / len(answer_terms) if answer_terms else 1.0
            window = set().union(*sentences[max(i - 1, 0) : i + 2])
            best = max(best, (overlap, sum(w for t, w in weight.items() if t in window) / total))
    return max(best[0], 0.0), best[1]


def read_questions(path: Path) -> list[dict[str, Any]]:
    """The questions file's records; ``SystemExit`` naming the line of a malformed one, or a file without both
    answerable and unanswerable questions (abstention recall needs both)."""
    asked = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            asked.append({"id": record["id"], "question": record["question"], "answers": list(record["answers"])})
        except (ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"{path}:{number}: not a question ({err!r}); want id, question, answers") from err
    if not any(q["answers"] for q in asked) or all(q["answers"] for q in asked):
        raise SystemExit(f"{path}: needs answerable and unanswerable questions (answers []) to measure abstention")
    return asked


def read_run(path: Path) -> list[dict[str, Any]]:
    """The per-question records of a ``lorag eval-rag --json`` output; ``SystemExit`` naming a file that is not one."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["questions"]
        for record in records:
            if missing := RUN_KEYS - set(record):
                raise KeyError(f"a question lacks {sorted(missing)}")
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a `lorag eval-rag --json` output ({err!r}); run eval-rag with --json") from err
    return list(records)


def answered_questions(questions: Path, index_dir: Path, runs: list[Path]) -> tuple[list[Answered], int, int]:
    """Every question some run answered (the first run that did), and the file's answerable / unanswerable counts."""
    from lorag.rag.index import DocumentIndex

    asked = read_questions(questions)
    answers: dict[str, dict[str, Any]] = {}
    for run in runs:
        for record in read_run(run):
            if not record["abstained"]:
                answers.setdefault(record["id"], record)
    index = DocumentIndex(index_dir, embedder="minilm")
    terms, sentences = TermStatistics.of_index(index), SentenceSimilarity.of_index(index)
    gate = AnswerabilityGate.load()
    rows = []
    for question in asked:
        if (answer := answers.get(question["id"])) is None:
            continue
        passages = [s["text"] for s in answer["sources"]]
        dense = [s.get("relevance") for s in answer["sources"]]
        probability = gate.probability(question["question"], passages, dense, terms, sentences)
        checks = answer_checks(question["question"], answer["answer"], passages, terms)
        rows.append(Answered(int(bool(question["answers"])), probability, *checks))
    answerable = sum(1 for q in asked if q["answers"])
    return rows, answerable, len(asked) - answerable


def rate(
    rows: list[Answered], answerable: int, unanswerable: int, passes: Callable[[Answered], bool], threshold: float
) -> str:
    """'answered rate / abstention recall' when the rows at ``threshold`` or above that ``passes`` are answered."""
    kept = [r for r in rows if r.probability >= threshold and passes(r)]
    answered = sum(r.label for r in kept) / answerable
    recall = 1 - sum(1 - r.label for r in kept) / unanswerable
    return f"{answered:.3f} / {recall:.3f}"


def best_recall(scores: list[float], labels: list[int], answerable: int, unanswerable: int, answered: float) -> str:
    """Abstention recall at the highest score threshold that still answers ``answered`` of the answerable ones."""
    kept = sorted((s for s, y in zip(scores, labels, strict=True) if y), reverse=True)
    need = math.ceil(answered * answerable)
    if need > len(kept):
        return "n/a"
    threshold = kept[need - 1]
    wrong = sum(1 for s, y in zip(scores, labels, strict=True) if not y and s >= threshold)
    return f"{1 - wrong / unanswerable:.3f}"


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True, help="the questions file both runs answered")
    parser.add_argument("--index-dir", type=Path, required=True, help="the index both runs used")
    parser.add_argument("--answers", type=Path, nargs="+", required=True, help="eval-rag --json outputs")
    args = parser.parse_args(argv)
    for path in [args.questions, *args.answers]:
        if not path.is_file():
            parser.error(f"{path} is not a file")
    if not (args.index_dir / "CURRENT").is_file():
        parser.error(f"{args.index_dir} holds no lorag index (no CURRENT file): pass the runs' --index-dir")

    rows, answerable, unanswerable = answered_questions(args.questions, args.index_dir, args.answers)
    print(f"{args.questions}: {answerable} answerable, {unanswerable} unanswerable; answered rate / recall")
    print(
        "| min_answerability | gate alone | + some answer word in a sentence | + every answer word in one sentence "
        f"| + answer window >= {MIN_ANSWER_WINDOW} |"
    )
    print("| ---: | --- | --- | --- | --- |")
    checks: list[Callable[[Answered], bool]] = [
        lambda r: True,
        lambda r: r.overlap > 0,
        lambda r: r.overlap >= 1,
        lambda r: r.answer_window >= MIN_ANSWER_WINDOW,
    ]
    for t in THRESHOLDS:
        cells = [rate(rows, answerable, unanswerable, passes, t) for passes in checks]
        print(f"| {t} | " + " | ".join(cells) + " |")
    labels = [r.label for r in rows]
    logit = [math.log(r.probability / (1 - r.probability)) for r in rows]
    x = np.array([[z, r.overlap, r.answer_window] for z, r in zip(logit, rows, strict=True)])
    combined = cross_val_predict(LogisticRegression(max_iter=1000), x, labels, cv=10, method="decision_function")
    print("\n| answered rate kept | recall, gate alone | recall, gate + answer checks (10-fold CV logistic) |")
    print("| ---: | ---: | ---: |")
    for answered in ANSWERED_RATES:
        alone = best_recall(logit, labels, answerable, unanswerable, answered)
        both = best_recall(combined.tolist(), labels, answerable, unanswerable, answered)
        print(f"| {answered} | {alone} | {both} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

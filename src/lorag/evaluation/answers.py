"""Answer-quality metrics of a RAG system on questions with gold answers and supporting files; no model needed.

Answers are compared after ``strip_citations`` (otherwise SQuAD's normalisation turns "[2]" into a token "2") with
the official SQuAD v1.1 normalisation: lower case, punctuation and the articles a/an/the removed, white space
collapsed. Per answerable question, each text metric is the best over its gold answers. ``score_answers`` returns:

* ``exact_match``, ``f1`` (token F1), ``contains_gold`` (a normalised gold answer occurs in the normalised answer
  on word boundaries): means over answerable questions; an abstained answerable question scores 0.
* ``citation_precision``: over answered (not abstained) answerable questions that list supporting files, cited
  passages from a supporting file / all cited passages (micro-average); None when nothing was cited.
* ``citation_recall``: among those questions whose prompt held a supporting passage, the share that cite one.
* ``cited_rate``: the share of answered answerable questions that cite any passage.
* ``supporting_in_prompt``: the share of answerable questions listing supporting files whose prompt held at least
  one passage from one of them (retrieval recall as the model saw it; an abstained question had no prompt).
* ``abstention_precision``: unanswerable among abstained (None when none abstained); ``abstention_recall``:
  abstained among unanswerable (None when there are none); ``answered_rate``: answered among answerable.
* ``latency_p50_s``, ``latency_p95_s`` over all questions; ``tokens_per_s``: all completion tokens / all seconds
  (retrieval and abstentions included: the throughput a user sees).
* counts ``questions``, ``answerable``, ``unanswerable``.

A rate whose denominator is empty is None (JSON null), never 0, so "not measured" cannot pass for "failed".
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorag.evaluation.metrics import latency_percentiles

Metrics = dict[str, float | int | None]

# [1], [1, 2] and [1][2] (each bracket matched on its own); the white space before a marker goes with it.
_CITATION = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True)
class QAQuestion:
    """A question with its gold answers (none: the documents do not answer it) and the files that support them."""

    id: str
    question: str
    answers: list[str]
    supporting: list[str] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class QAPrediction:
    """What the system answered; ``sources`` are the passages in the prompt, each ``{"source", "text", "cited"}``."""

    id: str
    answer: str
    abstained: bool
    sources: list[dict[str, Any]]
    seconds: float
    completion_tokens: int
    abstain_probability: float | None = None
    """lorag only: the model's confidence in a no-answer reply it began (``Answer.abstain_probability``)."""
    declined: dict[str, Any] | None = None
    """lorag only: the gate that declined the question, why, and the passages it read (``Answer.declined_json``)."""


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def strip_citations(text: str) -> str:
    """The answer without citation markers such as ``[2]``, ``[1, 3]`` or ``[1][2]``."""
    return _CITATION.sub("", text).strip()


def exact_match(pred: str, gold: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gold))


def f1_score(pred: str, gold: str) -> float:
    """SQuAD v1.1 token F1 between normalised texts."""
    pred_tokens = normalize_answer(pred).split()
    gold_tokens = normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def contains_answer(pred: str, gold: str) -> float:
    """1.0 when the normalised gold answer occurs in the normalised prediction as whole words.

    Long answers from chatty models score low F1 even when right; this tells "right but verbose" from "wrong".
    """
    gold_norm = normalize_answer(gold)
    if not gold_norm:  # a gold of only articles/punctuation: nothing to look for, compare whole texts
        return exact_match(pred, gold)
    return float(f" {gold_norm} " in f" {normalize_answer(pred)} ")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _best(metric: Callable[[str, str], float], answer: str, golds: Sequence[str]) -> float:
    return max(metric(answer, gold) for gold in golds)


def score_answers(questions: Sequence[QAQuestion], predictions: Sequence[QAPrediction]) -> Metrics:
    """The metrics of the module docstring; every question needs exactly one prediction with its id."""
    by_id = {p.id: p for p in predictions}
    if len(by_id) != len(predictions) or set(by_id) != {q.id for q in questions}:
        raise ValueError("predictions must match the questions one to one by id")
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    em = f1 = contains = 0.0
    answered = cited_any = cited = cited_supporting = 0
    with_supporting = supported_prompts = recall_base = recall_hits = 0
    for q in answerable:
        p = by_id[q.id]
        sources_supporting = [s["source"] in q.supporting for s in p.sources]
        if q.supporting:
            with_supporting += 1
            supported_prompts += any(sources_supporting)
        if p.abstained:
            continue
        answered += 1
        text = strip_citations(p.answer)
        em += _best(exact_match, text, q.answers)
        f1 += _best(f1_score, text, q.answers)
        contains += _best(contains_answer, text, q.answers)
        cited_flags = [s["source"] in q.supporting for s in p.sources if s["cited"]]
        cited_any += bool(cited_flags)
        if q.supporting:
            cited += len(cited_flags)
            cited_supporting += sum(cited_flags)
            if any(sources_supporting):
                recall_base += 1
                recall_hits += any(cited_flags)
    abstained = [by_id[q.id].abstained for q in questions]
    abstained_unanswerable = sum(by_id[q.id].abstained for q in unanswerable)
    p50_ms, p95_ms = latency_percentiles([by_id[q.id].seconds for q in questions])
    seconds = sum(p.seconds for p in predictions)
    return {
        "questions": len(questions),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": _ratio(em, len(answerable)),
        "f1": _ratio(f1, len(answerable)),
        "contains_gold": _ratio(contains, len(answerable)),
        "answered_rate": _ratio(answered, len(answerable)),
        "cited_rate": _ratio(cited_any, answered),
        "citation_precision": _ratio(cited_supporting, cited),
        "citation_recall": _ratio(recall_hits, recall_base),
        "supporting_in_prompt": _ratio(supported_prompts, with_supporting),
        "abstention_precision": _ratio(abstained_unanswerable, sum(abstained)),
        "abstention_recall": _ratio(abstained_unanswerable, len(unanswerable)),
        "latency_p50_s": p50_ms / 1000.0,
        "latency_p95_s": p95_ms / 1000.0,
        "tokens_per_s": _ratio(sum(p.completion_tokens for p in predictions), seconds),
    }

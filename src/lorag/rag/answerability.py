"""The answerability gate: do the passages in the prompt hold the answer to the question?

A small reader cannot tell on its own. On SQuAD questions whose paragraph was removed from the documents,
SmolLM2-135M with the grounded adapter gave its no-answer reply probabilities that barely separated them from
answerable ones (ROC AUC 0.57 on the dev split), and a linear probe on its hidden states did little better (about
0.7). Retrieval scores alone do not separate them either (best dense score: AUC 0.72 on the train split), because
the other paragraphs of the same article are as similar to the question. What does separate them is what a reader
checks: whether the passage holds the question's *rare* words. The gate computes, with the index's own tokenizer
and IDF (``BM25Index.term_idf``):

- ``coverage``: the IDF-weighted share of the question's terms found in the best passage;
- ``window``: the same share in the best window of three consecutive sentences (the answer sentence and its
  neighbours), which is what single-sentence SQuAD answers need;
- ``missing_rarest``: the weight of the rarest question term that window lacks, relative to the rarest term's
  (a question about a detail the passages never name misses a rare word);
- the best and second-best dense scores of the passages, and ``sentence_dense``: the best cosine between the
  question and one *sentence* of the passages (the index's own embedder). A paragraph of the same article is as
  similar to the question as the removed one, but no sentence of it says what the question asks; this feature
  raised abstention recall at the same answered rate by about 0.08 on the train split's held-out questions.

A logistic regression over these six, fit on SQuAD train-article questions by ``benchmarks/answerability_gate.py``
(which records data and command in ``answerability_gate.json``), gives ``P(answerable)``; the pipeline declines when
it is below ``min_answerability``. The six numbers cost one embedding call for a dozen sentences and ship as a few
coefficients. A MiniLM cross-encoder trained to read question and sentence (``benchmarks/answerability_reader.py``),
fully fine-tuned (45 MB) or as a 3 MB LoRA adapter, raises ROC AUC as a seventh input (0.871 -> 0.891 on held-out
train-article questions) but hardly abstention recall at the answered rate ``lorag ask`` keeps (0.675 -> 0.69;
``rag_defaults.md`` sections 17-18), for a forward pass per sentence: not shipped. Nor is a check of the generated
answer against the passages (``benchmarks/answer_support.py``, section 20): it caught unanswerable multi-hop questions,
not SQuAD's. Without BM25 statistics (another sparse retriever), every word weighs the same; without an embedder,
``sentence_dense`` falls back to the best passage's dense score: the gate still runs, less sharply.

With an engine that can score tokens (``LoragEngine``, ``LlamaCppEngine``), lorag's front ends use a second gate
(``answerability_gate_gain.json``) that adds four inputs from the model: how much each passage makes the question
likelier (``lorag.rag.question_gain``); other engines keep the six-input gate. Scoring costs about one prompt's
reading, so that gate first asks the six-input one (its ``screen``): when that one's ``P(answerable)`` is far from the
threshold (``screen_margin`` in log-odds), its answer stands and the model is not asked. On SQuAD train-article
questions that skipped about 60% of the scoring and changed one decision in 1,600 at any threshold from 0.3 to 0.7.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lorag.rag.question_gain import GAIN_FEATURES, QuestionGain

#: The shipped gate's coefficients (written by ``benchmarks/answerability_gate.py``).
ANSWERABILITY_FILE = Path(__file__).resolve().with_name("answerability_gate.json")
#: The shipped gate that also reads the model's question gain (``benchmarks/answerability_gate.py --gain``).
ANSWERABILITY_GAIN_FILE = ANSWERABILITY_FILE.with_name("answerability_gate_gain.json")
#: Feature order of the coefficients (a gain-reading gate's follow, ``GAIN_FEATURES``).
FEATURES = ("coverage", "window", "missing_rarest", "dense_best", "dense_second", "sentence_dense")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class TermStatistics:
    """How the corpus splits text into terms, and how rare each term is (None: a term no document holds)."""

    tokenize: Callable[[str], list[str]]
    idf: Callable[[Sequence[str]], list[float | None]]

    @classmethod
    def of_index(cls, index: Any) -> TermStatistics:
        """The sparse side's tokenizer and IDF of a ``DocumentIndex`` / ``HybridRetriever`` / ``BM25Index``;
        uniform weights with lorag's default tokenizer when it has none."""
        sparse = getattr(getattr(index, "retriever", index), "sparse", index)
        if hasattr(sparse, "term_idf") and hasattr(sparse, "tokenizer"):
            return cls(sparse.tokenizer.tokenize, sparse.term_idf)
        from lorag.retrieval.tokenization import Tokenizer

        return cls(Tokenizer().tokenize, lambda terms: [1.0] * len(terms))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: split after ``.``, ``!`` or ``?`` and white space, blank ones dropped."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def question_weights(question: str, terms: TermStatistics) -> dict[str, float]:
    """Each term of ``question`` with its IDF; a term no document holds weighs as much as the rarest known one."""
    words = sorted(set(terms.tokenize(question)))
    idf = terms.idf(words)
    rarest = max((w for w in idf if w is not None), default=1.0) or 1.0
    return {t: (rarest if w is None else w) for t, w in zip(words, idf, strict=True)}


def coverage_features(question: str, passages: Sequence[str], terms: TermStatistics) -> tuple[float, float, float]:
    """(best passage's, best three-sentence window's) IDF-weighted share of the question's terms, and the weight of
    the rarest term that window lacks relative to the rarest term's (1.0: it lacks the rarest; 0.0: it lacks none).

    A question term no document holds weighs as much as the rarest known one: it is at least as telling."""
    weight = question_weights(question, terms)
    words = sorted(weight)
    if not words or not passages:
        return 0.0, 0.0, 1.0 if words else 0.0
    rarest = max(weight.values(), default=1.0) or 1.0
    total = sum(weight.values()) or 1.0

    def share(found: set[str]) -> float:
        return sum(weight[t] for t in words if t in found) / total

    best_passage = best_window = 0.0
    window_terms: set[str] = set()
    for text in passages:
        best_passage = max(best_passage, share(set(terms.tokenize(text))))
        sentences = [set(terms.tokenize(s)) for s in split_sentences(text)]
        for i in range(len(sentences)):
            window = set().union(*sentences[max(i - 1, 0) : i + 2])
            if (found := share(window)) > best_window:
                best_window, window_terms = found, window
    missing = max((weight[t] / rarest for t in words if t not in window_terms), default=0.0)
    return best_passage, best_window, missing


@dataclass(frozen=True)
class SentenceSimilarity:
    """The best cosine between a question and one sentence of the passages, with the index's embedder."""

    embed_query: Callable[[str], np.ndarray]
    embed_documents: Callable[[Sequence[str]], np.ndarray]

    @classmethod
    def of_index(cls, index: Any) -> SentenceSimilarity | None:
        """From a ``DocumentIndex`` / ``HybridRetriever`` with a lorag ``Embedder``; None without one."""
        embedder: Any = getattr(index, "embedder", None) or getattr(getattr(index, "retriever", None), "embedder", None)
        if not (hasattr(embedder, "embed_query") and hasattr(embedder, "embed_documents")):
            return None
        return cls(embedder.embed_query, embedder.embed_documents)

    def best(self, question: str, passages: Sequence[str]) -> float:
        sentences = [s for text in passages for s in split_sentences(text)]
        if not sentences:
            return 0.0
        query = np.asarray(self.embed_query(question), dtype=np.float32)
        vectors = np.asarray(self.embed_documents(sentences), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(query) or 1.0)
        return float(np.max(vectors @ query / np.where(norms > 0, norms, 1.0)))


@dataclass(frozen=True)
class AnswerabilityGate:
    """``P(answerable)`` = logistic(coefficients . standardised features + intercept); ``names`` are the features
    it reads: ``FEATURES``, then ``GAIN_FEATURES`` for a gate that reads the model too (``reads_model``)."""

    coefficients: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    metadata: dict[str, Any]
    names: tuple[str, ...] = FEATURES
    screen: AnswerabilityGate | None = None
    screen_margin: float = 0.0

    @classmethod
    def load(cls, path: str | Path = ANSWERABILITY_FILE) -> AnswerabilityGate:
        """A gate from its JSON file; a missing or malformed one is named, with what writes it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = tuple(data["features"])
            if names not in (FEATURES, FEATURES + GAIN_FEATURES):
                raise ValueError(f"features {list(names)} are not {list(FEATURES)}, optionally + {list(GAIN_FEATURES)}")
            gate = cls(
                tuple(float(c) for c in data["coefficients"]),
                float(data["intercept"]),
                tuple(float(m) for m in data["mean"]),
                tuple(float(s) for s in data["scale"]),
                dict(data.get("metadata", {})),
                names,
                *cls._screen_of(path, data.get("screen")),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path}: not an answerability gate ({err}); benchmarks/answerability_gate.py writes one"
            ) from err
        if not len(gate.coefficients) == len(gate.mean) == len(gate.scale) == len(names):
            raise ValueError(f"{path}: expected {len(names)} coefficients, means and scales")
        return gate

    @classmethod
    def _screen_of(cls, path: Path, screen: Any) -> tuple[AnswerabilityGate | None, float]:
        """The gate a file names as its ``screen`` (a file beside it) and the margin; (None, 0) when it names none."""
        if screen is None:
            return None, 0.0
        name, margin = str(screen["gate"]), float(screen["margin"])
        if Path(name).name != name or name == path.name or margin < 0:
            raise ValueError(f"screen {screen} must name a gate file beside this one and a margin >= 0")
        gate = cls.load(path.with_name(name))
        if gate.reads_model:
            raise ValueError(f"screen {name} reads the model itself")
        return gate, margin

    @classmethod
    def shipped(cls, question_gain: QuestionGain | None = None) -> AnswerabilityGate:
        """lorag's gate for a front end: the one that reads the model's question gain when it can score, else the
        six-input one."""
        return cls.load(ANSWERABILITY_GAIN_FILE if question_gain is not None else ANSWERABILITY_FILE)

    @property
    def reads_model(self) -> bool:
        """Whether ``probability`` needs a ``QuestionGain`` (the model's ``GAIN_FEATURES``)."""
        return len(self.names) > len(FEATURES)

    @staticmethod
    def features(
        question: str,
        passages: Sequence[str],
        dense: Sequence[float | None],
        terms: TermStatistics,
        sentences: SentenceSimilarity | None = None,
    ) -> list[float]:
        """The inputs, in ``FEATURES`` order (a passage found by BM25 alone has dense score 0; without
        ``sentences``, the best dense score stands in for the best sentence's)."""
        coverage, window, missing = coverage_features(question, passages, terms)
        scores = [*sorted((d or 0.0 for d in dense), reverse=True), 0.0, 0.0]
        sentence = sentences.best(question, passages) if sentences is not None else scores[0]
        return [coverage, window, missing, scores[0], scores[1], sentence]

    def probability(
        self,
        question: str,
        passages: Sequence[str],
        dense: Sequence[float | None],
        terms: TermStatistics,
        sentences: SentenceSimilarity | None = None,
        question_gain: QuestionGain | None = None,
        threshold: float | None = None,
    ) -> float:
        """``P(answerable)`` for the passages given together (one that holds the answer is enough). With the
        ``threshold`` it will be compared with, a gate that reads the model returns its screen's probability when
        that one is more than ``screen_margin`` log-odds from the threshold (the decision is then the screen's), or
        when the engine cannot score the question's tokens (llama.cpp, for a token that ends inside a character).

        Raises:
            ValueError: a gate that reads the model without ``question_gain``, or one that cannot score a question
                and has no screen.
        """
        features = self.features(question, passages, dense, terms, sentences)
        if not self.reads_model:
            return self.probability_of(features)
        if (first := self.screened(features, threshold)) is not None:
            return first
        if question_gain is None:
            raise ValueError(
                "this answerability gate reads the model's question gain: pass a question_gain of an engine "
                "that scores tokens (QuestionGain.of_engine(LoragEngine)), or use AnswerabilityGate.load()"
            )
        gain = question_gain.features(question, passages)
        if gain is not None:
            return self.probability_of(features + gain)
        if self.screen is None:
            raise ValueError(
                "the engine could not score this question's tokens and this gate has no screen to decide instead: "
                "give it one (as answerability_gate_gain.json has) or use AnswerabilityGate.load()"
            )
        return self.screen.probability_of(features[: len(FEATURES)])

    def screened(self, features: Sequence[float], threshold: float | None) -> float | None:
        """The screen's ``P(answerable)`` from the six ``FEATURES`` when it is more than ``screen_margin`` log-odds
        from ``threshold`` (its decision then stands); None when the gate must read the model (or has no screen)."""
        if self.screen is None or threshold is None or not 0.0 < threshold < 1.0:
            return None
        first = self.screen.probability_of(features[: len(FEATURES)])
        return first if abs(_log_odds(first) - _log_odds(threshold)) > self.screen_margin else None

    def probability_of(self, features: Sequence[float]) -> float:
        """``P(answerable)`` from the features (``names`` order)."""
        z = self.intercept + sum(
            c * (v - m) / s for c, v, m, s in zip(self.coefficients, features, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z))


def _log_odds(probability: float) -> float:
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))

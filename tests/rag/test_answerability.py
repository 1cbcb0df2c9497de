"""The answerability gate: its features by hand, its file, its decision in the pipeline, and the CLI's defaults."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lorag.rag.answerability import (
    ANSWERABILITY_FILE,
    ANSWERABILITY_GAIN_FILE,
    FEATURES,
    AnswerabilityGate,
    SentenceSimilarity,
    TermStatistics,
    coverage_features,
    question_weights,
)
from lorag.rag.pipeline import RagPipeline
from lorag.rag.prompt import NO_ANSWER
from lorag.rag.question_gain import GAIN_FEATURES, QuestionGain
from lorag.retrieval import BM25Index
from tests.rag.test_pipeline import FakeEngine, FakeIndex, _hit

IDF = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0}


def _terms(idf: dict[str, float] = IDF) -> TermStatistics:
    return TermStatistics(lambda text: re.findall(r"\w+", text.lower()), lambda ts: [idf.get(t) for t in ts])


def test_coverage_is_the_idf_weighted_share_of_question_words() -> None:
    # total weight 6: alpha 1, beta 2, gamma 3
    # the third number: the weight of the rarest word the best window lacks, over the rarest word's (gamma: 3)
    assert coverage_features("alpha beta gamma", ["alpha beta. x y. z."], _terms()) == pytest.approx((0.5, 0.5, 1.0))
    passage = "alpha. q. r. s. beta gamma."  # all words, but the best 3-sentence window misses alpha
    assert coverage_features("alpha beta gamma", [passage], _terms()) == pytest.approx((1.0, 5 / 6, 1 / 3))
    two = coverage_features("alpha beta gamma", ["alpha beta.", "gamma here. alpha too."], _terms())
    assert two == pytest.approx((4 / 6, 4 / 6, 2 / 3))  # the best passage counts, not their union


def test_a_word_no_document_holds_weighs_as_the_rarest_known() -> None:
    # "delta" is unknown: weight 3 (gamma's); total 1 + 3 + 3
    assert coverage_features("alpha gamma delta", ["delta alpha"], _terms()) == pytest.approx((4 / 7, 4 / 7, 1.0))
    assert coverage_features("alpha gamma delta", ["delta gamma alpha"], _terms())[2] == 0.0  # lacks none
    assert coverage_features("", ["alpha"], _terms()) == (0.0, 0.0, 0.0)
    assert coverage_features("alpha", [], _terms()) == (0.0, 0.0, 1.0)
    assert question_weights("Alpha gamma delta alpha", _terms()) == {"alpha": 1.0, "gamma": 3.0, "delta": 3.0}
    assert question_weights("delta", _terms()) == {"delta": 1.0}  # nothing known: every word weighs 1


def test_term_statistics_come_from_the_index_bm25_side() -> None:
    texts = ["the bridge opened", "a river bridge", "the town bridge"]
    terms = TermStatistics.of_index(BM25Index.from_texts(texts, ids=["a", "b", "c"]))
    rare, common, missing = terms.idf(terms.tokenize("opened bridge zebra"))
    assert missing is None and rare is not None and common is not None and rare > common
    uniform = TermStatistics.of_index(object())  # no sparse statistics: every word weighs the same
    assert uniform.idf(["x", "y"]) == [1.0, 1.0]


def _gate(intercept: float, coefficients: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)) -> AnswerabilityGate:
    return AnswerabilityGate(coefficients, intercept, (0.5, 0, 0, 0, 0, 0), (0.25, 1, 1, 1, 1, 1), {})


def test_probability_is_the_logistic_of_the_standardised_features() -> None:
    gate = _gate(0.2, (1.0, 0.0, 0.0, 2.0, 0.0, -1.0))
    value = gate.probability_of([1.0, 0.3, 0.1, 0.5, 0.4, 0.6])
    assert value == pytest.approx(1 / (1 + math.exp(-(0.2 + 2.0 + 1.0 - 0.6))))
    dense = [0.4, None, 0.7]  # a BM25-only passage counts as dense 0; best and second best in order
    # without an embedder, the best dense score stands in for the best sentence's
    assert gate.features("alpha", ["alpha"], dense, _terms()) == [1.0, 1.0, 0.0, 0.7, 0.4, 0.7]


class _Embedder:
    """Two-dimensional vectors: "answer" sentences point along the question, others across it."""

    def embed_query(self, text: str) -> np.ndarray:
        return np.array([2.0, 0.0])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.array([[3.0, 4.0] if "answer" in t else [0.0, 1.0] for t in texts])


def test_sentence_similarity_is_the_best_cosine_of_one_sentence() -> None:
    similarity = SentenceSimilarity.of_index(type("Index", (), {"embedder": _Embedder()})())
    assert similarity is not None
    assert similarity.best("q", ["no. nothing here.", "still no. the answer is here. more."]) == pytest.approx(0.6)
    assert similarity.best("q", ["no. none."]) == 0.0 and similarity.best("q", []) == 0.0
    assert SentenceSimilarity.of_index(object()) is None
    features = AnswerabilityGate.features("alpha", ["alpha answer."], [0.9], _terms(), similarity)
    assert features[-1] == pytest.approx(0.6)


def test_the_shipped_gate_loads_and_prefers_the_passage_with_the_answer() -> None:
    gate = AnswerabilityGate.load()
    data = json.loads(ANSWERABILITY_FILE.read_text(encoding="utf-8"))
    assert tuple(data["features"]) == FEATURES and "command" in gate.metadata
    texts = [
        "The Golden Gate Bridge opened in 1937 after four years of construction.",
        "San Francisco's cable cars run on three lines through the city.",
        "The Bay Bridge carries traffic between Oakland and San Francisco.",
    ]
    terms = TermStatistics.of_index(BM25Index.from_texts(texts, ids=["a", "b", "c"]))
    question = "When did the Golden Gate Bridge open?"
    with_answer = gate.probability(question, [texts[0], texts[1]], [0.6, 0.4], terms, None)
    without = gate.probability(question, [texts[2], texts[1]], [0.6, 0.4], terms, None)
    assert 0.0 < without < with_answer < 1.0


def test_the_shipped_gain_gate_reads_the_model_and_refuses_to_run_without_it() -> None:
    gate = AnswerabilityGate.load(ANSWERABILITY_GAIN_FILE)
    assert gate.reads_model and gate.names == FEATURES + GAIN_FEATURES and "question_gain" in gate.metadata
    assert not AnswerabilityGate.load().reads_model
    assert AnswerabilityGate.shipped(None) == AnswerabilityGate.load()
    texts = ["The Golden Gate Bridge opened in 1937.", "Cable cars run on three lines."]
    terms = TermStatistics.of_index(BM25Index.from_texts(texts, ids=["a", "b"]))
    question = "When did the Golden Gate Bridge open?"
    with pytest.raises(ValueError, match="reads the model's question gain"):
        gate.probability(question, texts, [0.6, 0.4], terms)

    def likelier_after(prompt: list[int], continuation: list[int]) -> list[float]:
        return [-1.0 if len(prompt) > 12 else -3.0] * len(continuation)  # any passage makes the question likelier

    gain = QuestionGain(lambda text, add_special_tokens=False: {"input_ids": [ord(c) for c in text]}, likelier_after)
    assert AnswerabilityGate.shipped(gain) == gate
    with_gain = gate.probability(question, texts, [0.6, 0.4], terms, None, gain)
    six = gate.features(question, texts, [0.6, 0.4], terms, None)
    assert with_gain == pytest.approx(gate.probability_of([*six, 2.0, 2.0, 2.0, 2.0]))


def test_the_screen_decides_alone_far_from_the_threshold_and_the_model_is_read_near_it() -> None:
    shipped = AnswerabilityGate.load(ANSWERABILITY_GAIN_FILE)
    assert shipped.screen == AnswerabilityGate.load() and shipped.screen_margin > 0
    calls: list[int] = []

    def counted(prompt: list[int], continuation: list[int]) -> list[float]:
        calls.append(len(prompt))
        return [-1.0] * len(continuation)

    gain = QuestionGain(lambda text, add_special_tokens=False: {"input_ids": [ord(c) for c in text]}, counted)
    screen = _gate(0.0)  # P = logistic(4 * (coverage - 0.5))
    gate = AnswerabilityGate((0.0,) * 10, 5.0, (0.0,) * 10, (1.0,) * 10, {}, FEATURES + GAIN_FEATURES, screen, 1.0)
    terms = _terms()
    far = gate.probability("alpha", ["alpha."], [0.9], terms, None, gain, threshold=0.5)  # coverage 1: log-odds 2
    assert far == pytest.approx(screen.probability_of([1.0, 0, 0, 0, 0, 0])) and calls == []
    near = gate.probability("alpha beta", ["alpha."], [0.9], terms, None, gain, threshold=0.5)  # log-odds -2/3
    assert near == pytest.approx(1 / (1 + math.exp(-5.0))) and len(calls) == 2  # the question alone, one passage
    assert gate.probability("alpha", ["alpha."], [0.9], terms, None, gain) == pytest.approx(near)  # no threshold
    assert gate.screened([1.0, 0, 0, 0, 0, 0], 0.5) is not None and gate.screened([0.6, 0, 0, 0, 0, 0], 0.5) is None


def test_a_question_the_engine_cannot_score_is_judged_by_the_screen() -> None:
    """llama.cpp does not report every token's log-probability (one ending inside a character): the screen decides."""
    unscored = QuestionGain(
        lambda text, add_special_tokens=False: {"input_ids": [ord(c) for c in text]}, lambda p, c: None
    )
    screen = _gate(0.0)
    gate = AnswerabilityGate((0.0,) * 10, 5.0, (0.0,) * 10, (1.0,) * 10, {}, FEATURES + GAIN_FEATURES, screen, 1.0)
    near = gate.probability("alpha beta", ["alpha."], [0.9], _terms(), None, unscored, threshold=0.5)
    assert near == pytest.approx(screen.probability_of(gate.features("alpha beta", ["alpha."], [0.9], _terms())))
    unscreened = AnswerabilityGate((0.0,) * 10, 5.0, (0.0,) * 10, (1.0,) * 10, {}, FEATURES + GAIN_FEATURES)
    with pytest.raises(ValueError, match="could not score"):
        unscreened.probability("alpha beta", ["alpha."], [0.9], _terms(), None, unscored, threshold=0.5)


def test_a_bad_screen_is_named(tmp_path: Path) -> None:
    data = json.loads(ANSWERABILITY_GAIN_FILE.read_text(encoding="utf-8"))
    (tmp_path / "answerability_gate.json").write_text(ANSWERABILITY_FILE.read_text(encoding="utf-8"), "utf-8")
    for screen in ({"gate": "../answerability_gate.json", "margin": 1.0}, {"gate": "gain.json", "margin": 1.0}):
        (tmp_path / "gain.json").write_text(json.dumps({**data, "screen": screen}), encoding="utf-8")
        with pytest.raises(ValueError, match=r"gain\.json: not an answerability gate .*beside this one"):
            AnswerabilityGate.load(tmp_path / "gain.json")
    (tmp_path / "gain.json").write_text(json.dumps({**data, "screen": {"gate": "missing.json", "margin": 1}}), "utf-8")
    with pytest.raises(ValueError, match=r"missing\.json"):
        AnswerabilityGate.load(tmp_path / "gain.json")
    assert AnswerabilityGate.load(tmp_path / "answerability_gate.json").screen is None


def test_a_malformed_gate_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "gate.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"gate\.json: not an answerability gate"):
        AnswerabilityGate.load(bad)
    bad.write_text(json.dumps({**json.loads(ANSWERABILITY_FILE.read_text()), "features": ["x"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="features"):
        AnswerabilityGate.load(bad)
    with pytest.raises(ValueError, match=r"missing\.json"):
        AnswerabilityGate.load(tmp_path / "missing.json")


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_dir)


def test_the_pipeline_declines_below_the_threshold_without_calling_the_model(tokenizer: Any) -> None:
    hits = FakeIndex([_hit(0, 0.9)])
    engine = FakeEngine(tokenizer, "an answer [1]")
    low = RagPipeline(hits, engine, min_answerability=0.5, answerability=_gate(-10.0))
    answer = low.ask("What passage?")
    assert answer.abstained and answer.answer == NO_ANSWER and engine.calls == []
    assert answer.sources == [] and answer.declined is not None and answer.declined.gate == "answerability"
    assert [(s.source, s.cited) for s in answer.declined_passages] == [("doc0.md", False)]  # what the gate read
    declined = answer.to_json()["declined"]
    assert declined["score"] < 0.5 and "min_answerability 0.5" in declined["reason"]
    assert [p["source"] for p in declined["passages"]] == ["doc0.md"]
    high = RagPipeline(hits, engine, min_answerability=0.5, answerability=_gate(10.0))
    answered = high.ask("What passage?")
    assert answered.answer == "an answer [1]" and len(engine.calls) == 1
    assert answered.declined is None and answered.declined_passages == [] and answered.to_json()["declined"] is None
    off = RagPipeline(hits, engine, min_answerability=0, answerability=_gate(-10.0))
    assert off.min_answerability is None
    assert not off.ask("What passage?").abstained
    with pytest.raises(ValueError, match="min_answerability"):
        RagPipeline(hits, engine, min_answerability=1.5)


def test_an_engine_that_cannot_score_gets_the_six_input_gate(tokenizer: Any) -> None:
    engine = FakeEngine(tokenizer, "an answer [1]")
    pipeline = RagPipeline(FakeIndex([_hit(0, 0.9)]), engine, min_answerability=0.5)
    assert pipeline.answerability is not None and not pipeline.answerability.reads_model
    with pytest.raises(ValueError, match="reads the model's question gain"):
        RagPipeline(FakeIndex([]), engine, min_answerability=0.5, answerability=AnswerabilityGate.shipped(_no_gain()))


class GainEngine(FakeEngine):
    """Also scores tokens, as ``LoragEngine.token_logprobs`` does (every token -1), counting the calls."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer, "an answer [1]")
        self.scored: list[str | None] = []

    def token_logprobs(self, prompt: Any, continuation: Any, *, adapter: str | None = None) -> list[float]:
        self.scored.append(adapter)
        return [-1.0] * len(continuation)


def test_the_pipeline_reads_the_model_only_where_the_screen_is_unsure(tokenizer: Any) -> None:
    screen = _gate(0.0)  # P = logistic(4 * (coverage - 0.5)): sure at coverage 1, unsure at 0.5
    gate = AnswerabilityGate((0.0,) * 10, 5.0, (0.0,) * 10, (1.0,) * 10, {}, FEATURES + GAIN_FEATURES, screen, 1.0)
    for text, reads in (("alpha beta.", False), ("alpha gamma.", True)):
        engine = GainEngine(tokenizer)
        pipeline = RagPipeline(
            FakeIndex([_hit(0, 0.9, text)]), engine, hops=1, min_answerability=0.5, answerability=gate
        )
        assert not pipeline.ask("alpha beta?").abstained
        assert engine.scored == ([None, None] if reads else [])  # the question alone and after the passage; the base


def _no_gain() -> QuestionGain:
    return QuestionGain(lambda text, add_special_tokens=False: {"input_ids": []}, lambda p, c: None)


def test_a_never_kept_no_answer_reply_is_forbidden_from_the_start(tokenizer: Any) -> None:
    engine = FakeEngine(tokenizer, "an answer [1]")
    RagPipeline(FakeIndex([_hit(0, 0.9)]), engine, abstain_confidence=1.0).ask("What passage?")
    assert len(engine.calls) == 1 and engine.calls[0]["sequence_bias"]


def test_the_cli_turns_the_gate_on_only_with_the_grounded_adapter(tiny_llm_dir: Path) -> None:
    from lorag.cli.answer_options import build_pipeline
    from lorag.rag.pipeline import DEFAULT_ABSTAIN_CONFIDENCE

    options: dict[str, Any] = dict(model=str(tiny_llm_dir), quantization="none", adapter=None, k=2, max_tokens=4)
    pipeline, engine = build_pipeline(FakeIndex([]), min_relevance=0.3, **options)
    engine.close()
    assert pipeline.min_answerability is None and pipeline.abstain_confidence == DEFAULT_ABSTAIN_CONFIDENCE
    pipeline, engine = build_pipeline(FakeIndex([]), min_relevance=0.3, min_answerability=0.5, **options)
    engine.close()
    assert pipeline.min_answerability == 0.5 and pipeline.answerability is not None
    assert pipeline.answerability.reads_model  # a local engine scores the question gain
    assert pipeline.abstain_confidence == 1.0  # the gate decides

"""``RagComposition``: which gate declines and why, when a gate cannot judge, what generated text means, the guard on a
stream, and where the answerability gate finds its statistics behind each framework's retriever."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from lorag.rag.answerability import AnswerabilityGate
from lorag.rag.composition import (
    DEFAULT_MIN_ANSWERABILITY,
    RagComposition,
    dense_relevance,
    estimate_tokens,
    gate_statistics,
    guarded,
    resolve_min_answerability,
)
from lorag.rag.prompt import NO_ANSWER, ContextBlock
from lorag.retrieval import HybridRetriever


def gate(intercept: float) -> AnswerabilityGate:
    """A gate whose answer is its intercept alone: P(answerable) near 0 for -10, near 1 for +10."""
    return AnswerabilityGate((0.0,) * 6, intercept, (0.0,) * 6, (1.0,) * 6, {})


def block(relevance: float | None, text: str = "CORS is enabled with CORSMiddleware.") -> ContextBlock:
    return ContextBlock(text, "cors.md", 1.0, {"relevance": relevance})


def composition(**kwargs: object) -> RagComposition:
    return RagComposition(count_tokens=estimate_tokens, context_window=4096, **kwargs)  # type: ignore[arg-type]


class BagOfWords:
    """A ``TextEmbedder`` over a fixed vocabulary: cosine = shared words; an off-topic question scores 0."""

    dimension = 1024

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            vector[zlib.crc32(word.encode()) % self.dimension] += 1.0
        return vector / (np.linalg.norm(vector) or 1.0)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def settings(self) -> dict[str, object]:
        return {"bag_of_words": self.dimension}


def test_the_relevance_gate_declines_below_the_best_dense_score() -> None:
    plan = composition(min_relevance=0.3).plan("Moon?", [block(0.1), block(0.2), block(None)])
    assert plan.declined is not None and plan.declined.gate == "relevance" and plan.messages == []
    assert plan.declined.score == pytest.approx(0.2) and "0.200 is below min_relevance 0.3" in plan.declined.reason
    assert composition(min_relevance=0.3).plan("CORS?", [block(0.1), block(0.5)]).declined is None
    assert composition(min_relevance=None).plan("Moon?", [block(0.1)]).declined is None


def test_a_gate_without_dense_scores_cannot_judge_and_is_skipped() -> None:
    plan = composition(min_relevance=0.3, min_answerability=0.5, answerability=gate(-10.0)).plan("Moon?", [block(None)])
    assert plan.declined is None and plan.messages and plan.blocks


def test_nothing_retrieved_is_declined_and_an_empty_question_refused() -> None:
    plan = composition().plan("CORS?", [])
    assert plan.declined is not None and plan.declined.gate == "retrieval"
    with pytest.raises(ValueError, match="question is empty"):
        composition().plan("  ", [block(0.9)])


def test_the_answerability_gate_declines_with_its_probability() -> None:
    low = composition(min_answerability=0.5, answerability=gate(-10.0)).plan("CORS?", [block(0.9)])
    assert low.declined is not None and low.declined.gate == "answerability" and low.declined.score < 0.5
    assert low.blocks  # the passages the gate read
    assert composition(min_answerability=0.5, answerability=gate(10.0)).plan("CORS?", [block(0.9)]).declined is None
    off = composition(min_answerability=0, answerability=gate(-10.0))
    assert off.min_answerability is None and off.plan("CORS?", [block(0.9)]).declined is None
    with pytest.raises(ValueError, match="min_answerability"):
        composition(min_answerability=1.5)


def test_the_prompt_is_fitted_or_the_window_named() -> None:
    blocks = [block(0.9, "word " * 400) for _ in range(5)]
    plan = RagComposition(count_tokens=estimate_tokens, context_window=1200, max_new_tokens=100).plan("CORS?", blocks)
    assert 0 < len(plan.blocks) < 5 and estimate_tokens(plan.messages) <= 1100
    with pytest.raises(ValueError, match="no retrieved passage fits the model's 300-token window"):
        RagComposition(count_tokens=estimate_tokens, context_window=300, max_new_tokens=100).plan("CORS?", blocks)


def test_the_outcome_recognises_no_answer_and_citations() -> None:
    plan = composition().plan("CORS?", [block(0.9), block(0.8)])
    cited = RagComposition.outcome(plan, "Use CORSMiddleware [2], [9].")
    assert not cited.abstained and cited.cited == {2}
    said = RagComposition.outcome(plan, "The context does not contain the answer [1].")
    assert said.abstained and said.cited == frozenset() and said.answer.startswith("The context")
    empty = RagComposition.outcome(plan, "")
    assert empty.answer == NO_ANSWER and empty.abstained


def test_a_declined_plan_s_outcome_is_the_no_answer_sentence() -> None:
    plan = composition(min_relevance=0.5).plan("Moon?", [block(0.1)])
    outcome = RagComposition.outcome(plan, "whatever")
    assert outcome.answer == NO_ANSWER and outcome.abstained and not outcome.cited


def test_guarded_cuts_a_loop_and_stops_reading() -> None:
    read: list[str] = []

    def deltas() -> Iterator[tuple[str, bool]]:
        for word in (
            "Use the middleware [1].\n",
            "allowOrigin: {\n",
            "  allowOrigin: {\n",
            "    allowOrigin: {\n",
            "never\n",
        ):
            read.append(word)
            yield word, False

    assert "".join(guarded(deltas())) == "Use the middleware [1].\nallowOrigin: {"
    assert "never\n" not in read


def test_guarded_ends_a_capped_answer_at_its_last_sentence() -> None:
    assert "".join(guarded([("Use the middleware [1]. Then add", False), (" the", True)])) == (
        "Use the middleware [1]."
    )


def test_dense_relevance_reads_lorag_retriever_metadata() -> None:
    assert dense_relevance({"lorag": {"component_scores": {"dense": 0.42, "bm25": 3.0}}}) == pytest.approx(0.42)
    assert dense_relevance({"lorag": {"component_scores": {"dense": None}}}) is None
    assert dense_relevance({"lorag": {"rank": 1}}) is None and dense_relevance({"relevance": 0.9}) is None


def test_the_answerability_default_follows_the_grounded_adapter() -> None:
    assert resolve_min_answerability(None, True) == DEFAULT_MIN_ANSWERABILITY
    assert resolve_min_answerability(None, False) is None
    assert resolve_min_answerability(0, True) is None and resolve_min_answerability(0.4, False) == 0.4


TEXTS = ["CORS is enabled with CORSMiddleware.", "Background tasks run after the response.", "Static files."]


def test_gate_statistics_are_found_behind_each_framework_s_retriever() -> None:
    from langchain_lorag import LoragBM25Retriever as LangChainBM25
    from langchain_lorag import LoragHybridRetriever as LangChainHybrid
    from llama_index.retrievers.lorag import LoragBM25Retriever as LlamaBM25
    from llama_index.retrievers.lorag import LoragHybridRetriever as LlamaHybrid

    hybrid = HybridRetriever.from_texts(TEXTS, BagOfWords())
    for source in (hybrid, LangChainHybrid(retriever=hybrid), LlamaHybrid(hybrid)):
        terms, sentences = gate_statistics(source)
        idf = terms.idf(terms.tokenize("CORS static unknownword"))
        assert idf[0] is not None and idf[2] is None  # the index's own IDF, not uniform weights
        assert sentences is not None and sentences.best("CORS middleware?", TEXTS[:1]) > 0.0
    for source in (LangChainBM25.from_texts(TEXTS), LlamaBM25.from_texts(TEXTS)):
        terms, sentences = gate_statistics(source)
        assert terms.idf(terms.tokenize("unknownword")) == [None] and sentences is None
    uniform, none = gate_statistics(object())
    assert uniform.idf(["anything"]) == [1.0] and none is None

"""Follow-up searches (``lorag.rag.hops``): each hop searches with the question and the passage the previous one
added, adds its best new passage, and stops when nothing is new; the pipeline marks such passages (no relevance of
their own, ``hop`` in the answer's sources)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.rag.composition import Declined
from lorag.rag.hops import check_hops, follow_up_query, follow_ups, second_look
from lorag.rag.pipeline import RagPipeline
from lorag.retrieval import HybridHit, HybridRetriever
from tests.rag.test_composition import BagOfWords, gate
from tests.rag.test_frameworks import METAS, TEXTS

ON_TOPIC = "How is CORS enabled with CORSMiddleware?"


def hit(doc_id: str, text: str = "", dense: float | None = 0.5) -> HybridHit:
    return HybridHit(doc_id, 1.0, 1, text or f"text of {doc_id}", {"source": f"{doc_id}.md"}, {"dense": dense}, {})


class Table:
    """A search over fixed rankings per query, recording what it was asked."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.asked: list[tuple[str, int]] = []

    def search(self, query: str, k: int = 5) -> list[HybridHit]:
        self.asked.append((query, k))
        return [hit(i) for i in self.rankings.get(query, [])][:k]


def test_each_hop_searches_with_the_question_and_the_passage_the_last_hop_added() -> None:
    question = "where was the director born?"
    after_a = follow_up_query(question, "text of a")
    after_c = follow_up_query(question, "text of c")
    table = Table({question: ["a", "b"], after_a: ["a", "b", "c"], after_c: ["c", "d", "a"]})
    added = follow_ups(question, table.search(question, 2), table.search, 3, key=lambda h: h.id, text=lambda h: h.text)
    assert [h.id for h in added] == ["c", "d"]
    assert table.asked[1:] == [(after_a, 3), (after_c, 4)]  # one more than the passages already found


def test_hops_stop_when_nothing_is_new_and_one_hop_adds_nothing() -> None:
    table = Table({"q": ["a", "b"], follow_up_query("q", "text of a"): ["b", "a"]})
    found = table.search("q", 2)
    assert follow_ups("q", found, table.search, 4, key=lambda h: h.id, text=lambda h: h.text) == []
    assert len(table.asked) == 2  # the first follow-up found nothing new: no further search
    assert follow_ups("q", found, table.search, 1, key=lambda h: h.id, text=lambda h: h.text) == []
    assert follow_ups("q", [], table.search, 2, key=lambda h: h.id, text=lambda h: h.text) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_bad_hops_are_named(bad: Any) -> None:
    with pytest.raises(ValueError, match="hops must be an integer >= 1"):
        check_hops(bad)


class NoModel:
    """Enough of an engine for planning: the pipeline is only asked for its plan here."""

    context_window = 4096

    class tokenizer:
        @staticmethod
        def apply_chat_template(messages: Any, **_: Any) -> list[int]:
            return [0] * sum(len(str(m["content"]).split()) for m in messages)


def test_the_pipeline_adds_follow_up_passages_without_a_relevance_of_their_own() -> None:
    question = "where was the director born?"
    table = Table({question: ["a", "b"], follow_up_query(question, "text of a"): ["a", "c"]})
    pipeline = RagPipeline(table, NoModel(), k=2, min_relevance=None, hops=2)  # type: ignore[arg-type]
    plan = pipeline._prepare(question)
    assert [b.source for b in plan.blocks] == ["a.md", "b.md", "c.md"]
    assert [b.metadata["relevance"] for b in plan.blocks] == [0.5, 0.5, None]
    assert [s.hop for s in pipeline._sources(plan, frozenset())] == [0, 0, 1]
    with pytest.raises(ValueError, match="hops must be"):
        RagPipeline(table, NoModel(), hops=0)  # type: ignore[arg-type]


def test_the_cli_refuses_hops_below_one(tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["ask", "anything?", "--docs", str(tmp_path), "--hops", "0"])
    assert result.exit_code == 2 and "--hops" in result.output


def test_the_gates_read_follow_up_passages_without_a_dense_score() -> None:
    """With both gates on, a follow-up passage (no relevance of its own) is read as BM25-only: the plan is made."""
    hybrid = HybridRetriever.from_texts(TEXTS, BagOfWords(), metadatas=METAS)
    question = ON_TOPIC
    on = {"min_relevance": 0.1, "min_answerability": 0.5, "answerability": gate(10.0)}
    plan = RagPipeline(hybrid, NoModel(), k=2, hops=2, **on)._prepare(question)  # type: ignore[arg-type]
    assert plan.declined is None and len(plan.blocks) == 3 and plan.blocks[2].metadata["relevance"] is None
    low = {**on, "answerability": gate(-10.0)}
    assert RagPipeline(hybrid, NoModel(), k=2, hops=2, **low)._prepare(question).declined is not None  # type: ignore[arg-type]


class NeedsThree:
    """An answerability gate that finds the answer only among three passages or more."""

    def probability(self, question: str, texts: list[str], *_: Any) -> float:
        return 0.9 if len(texts) >= 3 else 0.1


class CountedSearch:
    def __init__(self, index: HybridRetriever) -> None:
        self.index, self.queries = index, 0

    def search(self, query: str, k: int = 5) -> list[HybridHit]:
        self.queries += 1
        return self.index.search(query, k=k)

    def __getattr__(self, name: str) -> Any:  # the gate's term statistics and embedder
        return getattr(self.index, name)


def test_only_an_answerability_decline_gets_a_second_look_and_only_with_more_searches_allowed() -> None:
    answerability, relevance = Declined("answerability", "low"), Declined("relevance", "off topic")
    assert second_look(answerability, 1, 2) and not second_look(answerability, 2, 2)
    assert not second_look(relevance, 1, 2) and not second_look(None, 1, 2)


def test_a_question_the_gate_declines_is_searched_further_and_judged_again() -> None:
    """With one search per question, a decline of the answerability gate gets the follow-up search first."""
    hybrid = CountedSearch(HybridRetriever.from_texts(TEXTS, BagOfWords(), metadatas=METAS))
    on: dict[str, Any] = {"min_relevance": 0.1, "min_answerability": 0.5, "answerability": NeedsThree()}
    plan = RagPipeline(hybrid, NoModel(), k=2, hops=1, **on)._prepare(ON_TOPIC)  # type: ignore[arg-type]
    assert plan.declined is None and len(plan.blocks) == 3 and plan.blocks[2].metadata["hop"] == 1
    assert hybrid.queries == 2  # the question's own search, then one follow-up
    at_once = RagPipeline(hybrid, NoModel(), k=2, hops=1, hops_when_declined=1, **on)._prepare(ON_TOPIC)  # type: ignore[arg-type]
    assert at_once.declined is not None and at_once.declined.gate == "answerability" and len(at_once.blocks) == 2
    never = RagPipeline(hybrid, NoModel(), k=2, hops=1, **{**on, "answerability": gate(-10.0)})  # type: ignore[arg-type]
    assert never._prepare(ON_TOPIC).declined is not None  # searched further, still declined
    hybrid.queries = 0
    off_topic = RagPipeline(hybrid, NoModel(), k=2, hops=1, **{**on, "min_relevance": 0.99})  # type: ignore[arg-type]
    assert off_topic._prepare(ON_TOPIC).declined.gate == "relevance" and hybrid.queries == 1  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="hops_when_declined must be"):
        RagPipeline(hybrid, NoModel(), hops_when_declined=0)  # type: ignore[arg-type]


def test_by_default_each_question_gets_one_follow_up_search_and_a_decline_none_more() -> None:
    hybrid = CountedSearch(HybridRetriever.from_texts(TEXTS, BagOfWords(), metadatas=METAS))
    plan = RagPipeline(hybrid, NoModel(), k=2, min_relevance=None)._prepare(ON_TOPIC)  # type: ignore[arg-type]
    assert [b.metadata.get("hop", 0) for b in plan.blocks] == [0, 0, 1] and hybrid.queries == 2
    hybrid.queries = 0
    declining = {"min_relevance": None, "min_answerability": 0.5, "answerability": gate(-10.0)}
    declined = RagPipeline(hybrid, NoModel(), k=2, **declining)._prepare(ON_TOPIC)  # type: ignore[arg-type]
    assert declined.declined is not None and declined.declined.gate == "answerability" and hybrid.queries == 2


def test_the_cli_refuses_hops_when_declined_below_one(tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["ask", "anything?", "--docs", str(tmp_path), "--hops-when-declined", "0"])
    assert result.exit_code == 2 and "--hops-when-declined" in result.output

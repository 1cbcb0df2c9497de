"""RagPipeline mechanics: abstaining, fitting the window, citations, streaming, and the CLI on tiny models."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lorag.embedding import Embedder
from lorag.rag.answer_guard import loop_start
from lorag.rag.index import DocumentIndex
from lorag.rag.pipeline import RagPipeline, chat_token_counter
from lorag.rag.prompt import NO_ANSWER
from lorag.retrieval import HybridHit


@dataclass
class _Usage:
    prompt_tokens: int = 3
    completion_tokens: int = 2


@dataclass
class _Result:
    text: str
    usage: _Usage = field(default_factory=_Usage)


@dataclass
class _Delta:
    text: str
    usage: _Usage | None = None
    finish_reason: str | None = None


class FakeEngine:
    """Answers with a fixed text and records what it was asked."""

    def __init__(self, tokenizer: Any, answer: str, context_window: int = 4096, finish: str = "stop") -> None:
        self.tokenizer = tokenizer
        self.context_window = context_window
        self.answer = answer
        self.finish = finish
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompt: str | None = None, **kw: Any) -> _Result:
        self.calls.append(kw)
        return _Result(self.answer)

    def submit(self, prompt: str | None = None, **kw: Any) -> Any:
        self.calls.append(kw)
        return _Handle(self.answer, self.finish)


class _Handle:
    """Like ``RequestHandle``: iterate the deltas, then ``result_value`` (here without log-probs)."""

    def __init__(self, answer: str, finish: str) -> None:
        self.answer, self.finish, self.result_value = answer, finish, None

    def __iter__(self) -> Any:
        for word in self.answer.split(" "):
            yield _Delta(word + " ")
        yield _Delta("", _Usage(), self.finish)


class FakeIndex:
    def __init__(self, hits: list[HybridHit]) -> None:
        self.hits = hits

    def search(self, query: str, k: int = 5) -> list[HybridHit]:
        return self.hits[:k]


def _hit(i: int, dense: float, text: str = "passage text " * 30) -> HybridHit:
    meta = {"source": f"doc{i}.md", "start": 0, "end": len(text), "section": f"S{i}"}
    return HybridHit(f"doc{i}", 1.0 - i / 10, i + 1, text, meta, {"bm25": 1.0, "dense": dense}, {"bm25": 1, "dense": 1})


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_dir)


def test_abstains_without_calling_the_model_when_nothing_is_relevant(tokenizer: Any) -> None:
    engine = FakeEngine(tokenizer, "made up")
    answer = RagPipeline(FakeIndex([_hit(0, 0.1)]), engine, min_relevance=0.3).ask("What is the moon made of?")
    assert answer.abstained and answer.answer == NO_ANSWER and answer.sources == [] and engine.calls == []
    assert answer.declined is not None and answer.declined.gate == "relevance" and answer.declined.score == 0.1
    assert [s.source for s in answer.declined_passages] == ["doc0.md"]


def test_cites_and_numbers_sources(tokenizer: Any) -> None:
    engine = FakeEngine(tokenizer, "Use the middleware [2].")
    pipeline = RagPipeline(FakeIndex([_hit(0, 0.8), _hit(1, 0.7), _hit(2, 0.6)]), engine, k=3)
    answer = pipeline.ask("How?")
    assert [s.number for s in answer.sources] == [1, 2, 3]
    assert [s.number for s in answer.cited_sources()] == [2]
    assert answer.sources[1].source == "doc1.md" and answer.sources[1].section == "S1"
    assert engine.calls[0]["temperature"] == 0.0
    assert json.loads(json.dumps(answer.to_json()))["sources"][1]["cited"] is True


def test_prompt_fits_the_window(tokenizer: Any) -> None:
    count = chat_token_counter(tokenizer)
    one = count([{"role": "user", "content": "passage text " * 30}])
    window = 50 + 3 * one
    engine = FakeEngine(tokenizer, "ok", context_window=window)
    pipeline = RagPipeline(FakeIndex([_hit(i, 0.9) for i in range(5)]), engine, k=5, max_new_tokens=50)
    answer = pipeline.ask("How?")
    assert count(engine.calls[0]["messages"]) <= window - 50
    assert 0 < len(answer.sources) < 5
    with pytest.raises(ValueError, match="no retrieved passage fits"):
        small = FakeEngine(tokenizer, "ok", context_window=50 + one)
        RagPipeline(FakeIndex([_hit(0, 0.9)]), small, max_new_tokens=50).ask("How?")


def test_stream_yields_pieces_then_the_answer(tokenizer: Any) -> None:
    engine = FakeEngine(tokenizer, "streamed words [1]")
    parts = list(RagPipeline(FakeIndex([_hit(0, 0.9)]), engine).stream("How?"))
    *pieces, final = parts
    assert "".join(pieces).strip() == final.answer == "streamed words [1]"
    assert final.sources[0].cited


def test_bad_questions_and_settings(tokenizer: Any) -> None:
    pipeline = RagPipeline(FakeIndex([_hit(0, 0.9)]), FakeEngine(tokenizer, "x"))
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="question is empty"):
            pipeline.ask(bad)
    with pytest.raises(ValueError, match="k must be positive"):
        RagPipeline(FakeIndex([]), FakeEngine(tokenizer, "x"), k=0)


def test_the_search_keeps_the_next_chunks_of_its_best_files(tokenizer: Any) -> None:
    def chunk(source: str, n: int, dense: float) -> HybridHit:
        text = f"{source} part {n} " * 20
        meta = {"source": source, "start": 0, "end": len(text)}
        return HybridHit(f"{source}#{n}", dense, n, text, meta, {"dense": dense}, {"dense": n})

    ranked = [chunk("cli.md", 1, 0.9), chunk("faq.md", 1, 0.8), chunk("cli.md", 2, 0.7), chunk("tips.md", 1, 0.6)]
    index = FakeIndex(ranked)
    answer = RagPipeline(index, FakeEngine(tokenizer, "ok [3]"), k=2, hops=1, chunks_per_file=2).ask("How?")
    expected = [("cli.md", "1"), ("faq.md", "1"), ("cli.md", "2")]
    assert [(s.source, s.text.split()[2]) for s in answer.sources] == expected
    answer = RagPipeline(index, FakeEngine(tokenizer, "ok [1]"), k=2, hops=1).ask("How?")  # one chunk per file
    assert [s.source for s in answer.sources] == ["cli.md", "faq.md"]
    with pytest.raises(ValueError, match="chunks_per_file must be a whole number >= 1"):
        RagPipeline(index, FakeEngine(tokenizer, "x"), chunks_per_file=0)


def test_end_to_end_on_tiny_models(docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path) -> None:
    from lorag.llm import LoragEngine

    index = DocumentIndex(tmp_path / "idx", embedder=Embedder(str(tiny_st_dir), device="cpu"), show_progress=False)
    index.sync(docs)
    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    try:
        pipeline = RagPipeline(index, engine, k=3, max_new_tokens=8, min_relevance=None)
        answer = pipeline.ask("Which origins are allowed?")
        streamed = list(pipeline.stream("Which origins are allowed?"))
    finally:
        engine.close()
    assert answer.usage["completion_tokens"] <= 8 and answer.sources
    assert streamed[-1].answer == answer.answer  # greedy: streaming gives the same text


def test_cli_ask_json_on_tiny_models(docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path) -> None:
    from typer.testing import CliRunner

    from lorag.cli import app

    args = ["ask", "--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    args += ["--model", str(tiny_llm_dir), "--quantization", "none", "--max-tokens", "6", "--min-relevance", "-1"]
    result = CliRunner().invoke(app, [*args, "--json", "Which origins are allowed?"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"answer", "sources"} <= set(payload)
    assert payload["sources"] and all({"source", "text"} <= set(s) for s in payload["sources"])
    empty = CliRunner().invoke(app, [*args, "   "])
    assert empty.exit_code == 2 and "question is empty" in empty.stderr
    folder = tmp_path / "nothing"
    folder.mkdir()
    none = CliRunner().invoke(app, ["index", "--docs", str(folder), "--index-dir", str(tmp_path / "idx2")])
    assert none.exit_code == 2 and "no readable documents" in none.stderr
    assert not (tmp_path / "idx2" / "CURRENT").exists()


def test_a_looping_answer_is_cut_where_the_loop_began(tokenizer: Any) -> None:
    looping = "Use the CORS middleware [1].\n  allowOrigin: {\n    allowOrigin: {\n      allowOrigin: {\n"
    engine = FakeEngine(tokenizer, looping)
    answer = RagPipeline(FakeIndex([_hit(0, 0.9)]), engine).ask("How?")
    assert answer.answer == "Use the CORS middleware [1].\n  allowOrigin: {"
    assert answer.usage["completion_tokens"] > 0


def test_loop_start() -> None:
    assert loop_start("one line here\nanother line\n") is None
    assert loop_start("same line again\nsame line again") is None  # the last line may still grow
    text = "intro text here\nsame line again\n  same line again\n"
    assert loop_start(text) == text.index("same line again", 20)  # the second copy, its indentation aside
    assert loop_start("}\n}\n}\n") is None  # short lines repeat legitimately


def test_cli_index_backend_is_recorded_and_checked(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from lorag.cli import app

    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    args = ["index", "--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    built = CliRunner().invoke(app, [*args, "--backend", "onnx"])
    assert built.exit_code == 0, built.output
    assert list((tmp_path / "home" / "onnx").rglob("model_qint8.onnx"))
    again = CliRunner().invoke(app, [*args, "--backend", "onnx"])
    assert again.exit_code == 0 and "0 chunks embedded" in again.stderr
    other = CliRunner().invoke(app, args)  # torch vectors would not match the index's int8-encoder vectors
    assert other.exit_code == 2 and "backend: saved 'onnx', given 'torch'" in other.stderr
    unknown = CliRunner().invoke(app, [*args, "--backend", "openvino"])
    assert unknown.exit_code == 2 and "openvino" in unknown.output


class _Result:
    def __init__(self, probability: float) -> None:  # "The" at 0.9, then the rest of the reply
        self.token_logprobs = [math.log(0.9), math.log(probability / 0.9), 0.0]


class UnsureEngine(FakeEngine):
    """Replies the no-answer sentence with a given probability; with it forbidden, answers."""

    def __init__(self, tokenizer: Any, probability: float) -> None:
        super().__init__(tokenizer, NO_ANSWER)
        self.probability = probability

    def submit(self, prompt: str | None = None, **kw: Any) -> Any:
        self.calls.append(kw)
        if "sequence_bias" in kw:
            return _Handle("Paris [1].", "stop")
        handle = _Handle(NO_ANSWER, "stop")
        handle.result_value = _Result(self.probability)
        return handle


@pytest.mark.parametrize(
    ("probability", "confidence", "abstains"), [(0.3, 0.5, False), (0.9, 0.5, True), (0.3, None, True)]
)
def test_an_unsure_no_answer_reply_is_answered_anyway(
    tokenizer: Any, probability: float, confidence: float | None, abstains: bool
) -> None:
    engine = UnsureEngine(tokenizer, probability)
    pipeline = RagPipeline(FakeIndex([_hit(0, 0.9)]), engine, abstain_confidence=confidence)
    pieces = list(pipeline.stream("Capital of France?"))
    answer = pieces[-1]
    assert answer.abstained is abstains
    assert "".join(pieces[:-1]) == answer.answer  # the first reply was never shown when it was replaced
    if abstains:
        assert answer.answer == NO_ANSWER and len(engine.calls) == 1
    else:
        assert answer.answer == "Paris [1]." and answer.sources[0].cited
        banned = engine.calls[1]["sequence_bias"]
        the = tokenizer(NO_ANSWER, add_special_tokens=False)["input_ids"][0]
        assert any(ids[-1] == the and bias == -100.0 and len(ids) == 4 for ids, bias in banned)  # after the prompt
    if confidence is not None:
        assert answer.abstain_probability == pytest.approx(probability)  # the reply's, not its first token's


class ScoringEngine(FakeEngine):
    """Also scores replies, as ``LoragEngine.continuation_logprobs`` does: ``scores`` gives each reply's."""

    def __init__(self, tokenizer: Any, scores: dict[str, float] | None) -> None:
        super().__init__(tokenizer, "1999 [2]")
        self.scores = scores
        self.scored: list[tuple[list[str], str | None]] = []

    def continuation_logprobs(self, messages: Any, replies: Any, *, adapter: str | None = None) -> list[float] | None:
        self.scored.append((list(replies), adapter))
        return None if self.scores is None else [self.scores[r] for r in replies]


def _named(i: int, text: str) -> HybridHit:
    return _hit(i, 0.9, f"{text} " + "filler words " * 20)


@pytest.mark.parametrize(("likelier", "cited"), [("Wavves", 1), ("Social Code", 2)])
def test_a_choice_question_is_answered_with_the_likelier_option(tokenizer: Any, likelier: str, cited: int) -> None:
    other = "Social Code" if likelier == "Wavves" else "Wavves"
    engine = ScoringEngine(tokenizer, {likelier: -2.0, other: -3.0})
    hits = [_named(0, "Wavves formed in 2008."), _named(1, "Social Code formed in 1999.")]
    pipeline = RagPipeline(FakeIndex(hits), engine, k=2, hops=1, adapter="grounded")
    *pieces, answer = pipeline.stream("Which band was formed first, Wavves or Social Code?")
    assert "".join(pieces) == answer.answer == f"{likelier} [{cited}]"
    assert [s.number for s in answer.cited_sources()] == [cited] and not answer.abstained
    assert engine.scored == [(["Wavves", "Social Code"], "grounded")] and engine.calls == []  # nothing generated
    assert answer.usage["completion_tokens"] == 0


def test_choices_fall_back_to_generating(tokenizer: Any) -> None:
    hits = [_named(0, "Wavves formed in 2008."), _named(1, "Social Code formed in 1999.")]
    question = "Which band was formed first, Wavves or Social Code?"
    off = ScoringEngine(tokenizer, {"Wavves": -1.0, "Social Code": -2.0})
    assert RagPipeline(FakeIndex(hits), off, hops=1, choices=False).ask(question).answer == "1999 [2]"
    assert off.scored == []
    cannot = ScoringEngine(tokenizer, None)  # e.g. an adapter with virtual tokens
    assert RagPipeline(FakeIndex(hits), cannot, hops=1).ask(question).answer == "1999 [2]"
    plain = FakeEngine(tokenizer, "1999 [2]")  # an engine that cannot score
    assert RagPipeline(FakeIndex(hits), plain, hops=1).ask(question).answer == "1999 [2]"
    no_choice = ScoringEngine(tokenizer, {})
    assert RagPipeline(FakeIndex(hits), no_choice, hops=1).ask("When was Wavves formed?").answer == "1999 [2]"
    assert no_choice.scored == []

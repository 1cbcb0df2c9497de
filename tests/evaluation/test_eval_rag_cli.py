"""``lorag eval-rag`` end to end on the tiny models, its options against ``lorag ask``'s, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lorag.cli import app

METRICS = {
    "answerable",
    "unanswerable",
    "exact_match",
    "f1",
    "contains_gold",
    "answered_rate",
    "cited_rate",
    "citation_precision",
    "citation_recall",
    "supporting_in_prompt",
    "abstention_precision",
    "abstention_recall",
    "latency_p50_s",
    "latency_p95_s",
    "tokens_per_s",
}


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _questions(tmp_path: Path) -> Path:
    port = {"id": "port", "question": "Which port does the server use?", "answers": ["8000"]}
    cors = {"id": "cors", "question": "What allows cross-origin requests?", "answers": ["the CORS middleware"]}
    moon = {"id": "moon", "question": "What is the moon made of?", "answers": []}
    lines = [{**port, "supporting": ["notes.txt"]}, {**cors, "supporting": ["guide/cors.md"]}, moon]
    return _write(tmp_path / "questions.jsonl", lines)


def test_eval_rag_on_tiny_models(docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path) -> None:
    args = ["eval-rag", "--docs", str(docs), "--questions", str(_questions(tmp_path))]
    args += ["--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir), "--model", str(tiny_llm_dir)]
    args += ["--quantization", "none", "--adapter", "none", "--max-tokens", "6", "--min-relevance", "-1"]
    result = CliRunner().invoke(app, [*args, "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == METRICS | {"questions", "engine"}
    assert payload["engine"] == "torch (none)"  # a model without a GGUF: lorag's PyTorch engine
    assert (payload["answerable"], payload["unanswerable"]) == (2, 1)
    assert [q["id"] for q in payload["questions"]] == ["port", "cors", "moon"]
    indexed = {"guide/cors.md", "tasks.md", "notes.txt"}
    for q in payload["questions"]:
        assert {"id", "answer", "abstained", "sources"} <= set(q)
        assert q["sources"]  # --min-relevance -1: never gated, the model saw passages
        assert {s["source"] for s in q["sources"]} <= indexed
        assert all(isinstance(s["cited"], bool) and s["text"] for s in q["sources"])
    for key in METRICS - {"answerable", "unanswerable", "latency_p50_s", "latency_p95_s", "tokens_per_s"}:
        assert payload[key] is None or 0.0 <= payload[key] <= 1.0, key
    assert 0 < payload["latency_p50_s"] <= payload["latency_p95_s"] and payload["tokens_per_s"] > 0
    hits = [
        any(s["source"] == f for s in q["sources"])
        for q, f in zip(payload["questions"][:2], ["notes.txt", "guide/cors.md"], strict=True)
    ]
    assert payload["supporting_in_prompt"] == sum(hits) / 2

    table = CliRunner().invoke(app, [*args, "--no-progress"])  # the index is reused: nothing re-embedded
    assert table.exit_code == 0, table.output
    assert "3 questions: 2 answerable, 1 unanswerable" in table.stdout and "citation_recall" in table.stdout
    assert "0 chunks embedded" in table.stderr


def test_answer_options_match_lorag_ask() -> None:
    group = typer.main.get_command(app)
    ask, evaluate = (
        {p.name: p for p in group.resolve_command(typer.Context(group), [name])[1].params}  # type: ignore[attr-defined]
        for name in ("ask", "eval-rag")
    )
    shared = set(ask) - {"question", "docs", "stream", "as_json"}
    assert "model" in shared
    assert shared <= set(evaluate)
    for name in shared:
        assert (evaluate[name].opts, evaluate[name].default) == (ask[name].opts, ask[name].default), name


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [{"id": "a", "question": "?", "answers": []}, "{oops", {"id": "b", "question": "?"}],
            ["line 2: not valid JSON", 'line 3: missing "answers"'],
        ),
        (
            [{"id": "a", "question": "?", "answers": []}, {"id": "a", "question": "?", "answers": []}],
            ["line 2: id 'a' repeats line 1"],
        ),
        (
            [{"id": "a", "question": "?", "answers": ["x"], "supporting": ["gone.md"]}],
            ["line 1: supporting file 'gone.md'"],
        ),
    ],
)
def test_bad_questions_exit_2_before_anything_is_indexed(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, lines: list[Any], expected: list[str]
) -> None:
    path = _write(tmp_path / "q.jsonl", lines)
    args = ["eval-rag", "--docs", str(docs), "--questions", str(path), "--index-dir", str(tmp_path / "idx")]
    result = CliRunner().invoke(app, [*args, "--embedder", str(tiny_st_dir)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {path}:") and "Traceback" not in result.output
    for line in expected:
        assert line in result.stderr
    assert not (tmp_path / "idx").exists()


def test_a_supporting_file_the_index_keeps_out_exits_2(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    folder = ["--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    assert CliRunner().invoke(app, ["index", *folder, "--exclude", "guide/"]).exit_code == 0
    result = CliRunner().invoke(app, ["eval-rag", *folder, "--questions", str(_questions(tmp_path))])
    assert result.exit_code == 2
    assert "line 2: supporting file 'guide/cors.md' is left out by --exclude ['guide/']" in result.stderr


def test_empty_docs_exits_2(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    path = _write(tmp_path / "q.jsonl", [{"id": "a", "question": "?", "answers": []}])
    args = ["eval-rag", "--docs", str(folder), "--questions", str(path), "--index-dir", str(tmp_path / "idx")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"error: document folder {str(folder)!r} holds no" in result.stderr
    assert not (tmp_path / "idx").exists()

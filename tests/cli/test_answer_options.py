"""``AnswerOptions``: the flags ``ask`` and ``eval-rag`` share, spliced into each command and forwarded once."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lorag.cli import answer_options, app
from lorag.cli.answer_options import AnswerOptions, with_answer_options
from lorag.cli.documents import IndexBackend

SHARED = [field.name for field in fields(AnswerOptions)]


def _params(name: str) -> list[str]:
    group = typer.main.get_command(app)
    return [p.name for p in group.resolve_command(typer.Context(group), [name])[1].params]  # type: ignore[attr-defined]


def test_the_shared_flags_stand_where_options_is_declared_in_both_commands() -> None:
    assert _params("ask") == ["question", "docs", "index_dir", *SHARED, "stream", "as_json"]
    assert _params("eval-rag") == ["docs", "questions", "index_dir", *SHARED, "as_json", "progress"]


def test_the_command_gets_the_flags_as_one_answer_options() -> None:
    seen: dict[str, Any] = {}
    demo = typer.Typer()

    @demo.command()
    @with_answer_options
    def command(*, options: AnswerOptions, last: int = typer.Option(0, "--last")) -> None:
        seen.update(options=options, last=last)

    result = CliRunner().invoke(demo, ["--k", "3", "--adapter", "none", "--hops", "2", "--last", "7"])
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.k, options.adapter, options.hops, seen["last"]) == (3, "none", 2, 7)
    assert options.model == answer_options.DEFAULT_MODEL and options.backend is IndexBackend.torch


class _Engine:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_open_pipeline_forwards_every_option_and_closes_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine()
    calls: dict[str, Any] = {}

    def open_index(*args: Any, **kwargs: Any) -> str:
        calls["index"] = (args, kwargs)
        return "index"

    def build_pipeline(index: str, **kwargs: Any) -> tuple[str, _Engine]:
        calls["pipeline"] = kwargs
        return f"pipeline over {index}", engine

    monkeypatch.setattr(answer_options, "open_index", open_index)
    monkeypatch.setattr(answer_options, "build_pipeline", build_pipeline)
    checked = {"adapter": None, "lm_head_dtype": "int8"}  # checked before the index opens: real values
    options = AnswerOptions(**{name: f"<{name}>" for name in SHARED} | checked)
    with pytest.raises(typer.Exit) as exit_info, options.open_pipeline(Path("docs"), None, quiet=True) as pipeline:
        assert pipeline == "pipeline over index" and not engine.closed
        raise ValueError("bad question")
    assert exit_info.value.exit_code == 2 and engine.closed
    args, kwargs = calls["index"]
    assert args == (Path("docs"), None, "<embedder>", "<backend>")
    folder = {"follow_links": "<follow_links>", "max_file_mb": "<max_file_mb>", "exclude": "<exclude>"}
    assert kwargs == {"quiet": True, **folder}
    index_only = {"embedder", "backend", "follow_links", "max_file_mb", "exclude"}
    assert calls["pipeline"] == {name: f"<{name}>" for name in SHARED if name not in index_only} | checked


def test_a_missing_adapter_exits_2_before_the_index_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_options, "open_index", lambda *args, **kwargs: pytest.fail("index opened"))
    args = ["ask", "anything?", "--docs", str(tmp_path), "--adapter", str(tmp_path / "gone")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "is not a directory" in result.stderr


def test_the_output_layer_precision_reaches_the_engine_and_a_bad_one_exits_2(tiny_llm_dir: Path) -> None:
    options: dict[str, Any] = dict(model=str(tiny_llm_dir), quantization="none", adapter="none", max_tokens=4)
    options |= dict(k=2, min_relevance=0.3)
    for flag, expected in (("int8", "int8"), ("none", None)):
        _, engine = answer_options.build_pipeline([], lm_head_dtype=flag, **options)
        engine.close()
        assert engine.base.settings.lm_head_dtype == expected
    with pytest.raises(typer.Exit) as exit_info:
        answer_options.build_pipeline([], lm_head_dtype="int4", **options)
    assert exit_info.value.exit_code == 2


def test_a_bad_output_layer_precision_is_named_before_anything_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ask", "anything?", "--index-dir", str(tmp_path), "--lm-head-dtype", "int4"])
    assert result.exit_code == 2 and "--lm-head-dtype must be none, bfloat16 or int8; got 'int4'" in result.stderr


@pytest.mark.parametrize("flag", [["--quantization", "int8"], ["--lm-head-dtype", "int8"]])
def test_torch_only_flags_with_the_llama_cpp_engine_exit_2_before_the_index_opens(
    flag: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answer_options, "open_index", lambda *args, **kwargs: pytest.fail("index opened"))
    args = ["ask", "anything?", "--docs", str(tmp_path), "--engine", "llama.cpp", *flag]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--engine llama.cpp runs the model's GGUF" in result.stderr

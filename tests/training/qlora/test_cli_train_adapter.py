"""``lorag train-adapter`` trains, reports, and refuses an occupied output dir with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lorag.cli import app


def test_cli_trains_then_refuses_to_overwrite(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    args = ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(echo_jsonl), "--output", str(out)]
    args += ["--max-steps", "2", "--quantization", "none", "--rank", "4", "--lora-alpha", "8", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "adapter saved to" in result.output
    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["steps"] == 2
    assert meta["hyperparameters"]["rank"] == 4 and meta["hyperparameters"]["quantization"] == "none"
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert "already holds an adapter" in again.output


def test_cli_reports_bad_lines(tiny_llm_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n\n', encoding="utf-8")
    result = CliRunner().invoke(
        app, ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(data), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "line 2: empty line" in result.output


def test_cli_reads_a_whole_alpha_without_teacher_as_lora_alpha(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path):
    # --alpha was LoRA's before distillation took the name; recorded commands (benchmarks/grounded_adapter.py) use it.
    out = tmp_path / "adapter"
    args = ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(echo_jsonl), "--output", str(out)]
    args += ["--max-steps", "1", "--quantization", "none", "--rank", "4", "--alpha", "8", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "read as --lora-alpha 8" in result.output
    assert json.loads((out / "adapter_config.json").read_text())["lora_alpha"] == 8

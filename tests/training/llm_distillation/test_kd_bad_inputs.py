"""A teacher that cannot be distilled from, and distillation weights out of range, fail before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.training.qlora import QLoRAConfig, train_adapter


def test_teacher_with_another_tokenizer_is_refused(
    tiny_llm_dir: Path, foreign_teacher_dir: Path, echo_data: Path, tmp_path: Path
) -> None:
    config = QLoRAConfig(quantization="none", teacher=str(foreign_teacher_dir), max_steps=1)
    with pytest.raises(ValueError, match=r"another tokenizer than the student.*'<\|tool_call\|>'"):
        train_adapter(tiny_llm_dir, echo_data, tmp_path / "out", config)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"kd_alpha": 1.5}, ValueError, r"kd_alpha \(--alpha\) must be in \[0, 1\]; got 1.5"),
        ({"kd_alpha": -0.1}, ValueError, r"must be in \[0, 1\]"),
        ({"kd_temperature": 0.0}, ValueError, r"kd_temperature \(--temperature\) must be positive; got 0.0"),
        ({"kd_temperature": -1.0}, ValueError, "must be positive"),
        ({"teacher": None, "teacher_adapter": "x"}, ValueError, "needs a teacher"),
        ({"teacher_adapter": "no-such-adapter"}, FileNotFoundError, "lacks adapter_config.json"),
    ],
)
def test_bad_distillation_settings_write_nothing(
    tiny_llm_dir: Path,
    teacher_dir: Path,
    echo_data: Path,
    tmp_path: Path,
    change: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    settings: dict[str, object] = {"quantization": "none", "teacher": str(teacher_dir), "max_steps": 1, **change}
    with pytest.raises(error, match=message):
        train_adapter(tiny_llm_dir, echo_data, tmp_path / "out", QLoRAConfig(**settings))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_pickled_teacher_adapter_is_refused(
    tiny_llm_dir: Path, teacher_dir: Path, echo_data: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "pickled"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04.")
    config = QLoRAConfig(quantization="none", teacher=str(teacher_dir), teacher_adapter=str(adapter), max_steps=1)
    with pytest.raises(FileNotFoundError, match=r"lacks adapter_model\.safetensors"):
        train_adapter(tiny_llm_dir, echo_data, tmp_path / "out", config)
    assert not (tmp_path / "out").exists()


def test_cli_distils_and_checks_its_flags(tiny_llm_dir: Path, teacher_dir: Path, echo_data: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(echo_data), "--output", str(out)]
    args += ["--quantization", "none", "--max-steps", "2", "--eval-fraction", "0", "--no-progress"]
    for bad, message in [
        (["--teacher", str(teacher_dir), "--alpha", "2"], "must be in [0, 1]"),
        (["--teacher", str(teacher_dir), "--temperature", "0"], "must be positive"),
        (["--alpha", "0.5"], "--lora-alpha"),
    ]:
        result = CliRunner().invoke(app, [*args, *bad])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()

    good = ["--teacher", str(teacher_dir), "--alpha", "0.3", "--temperature", "1.5", "--method", "bottleneck"]
    result = CliRunner().invoke(app, [*args, *good])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["method"] == "bottleneck"
    assert meta["distillation"]["alpha"] == 0.3 and meta["distillation"]["temperature"] == 1.5

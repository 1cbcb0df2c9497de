"""Settings a method cannot honour fail before anything is loaded or written, naming what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.training.qlora import QLoRAConfig, train_adapter


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "full"}, r"method 'full' trains every weight.*--quantization none"),
        ({"method": "full", "quantization": "int8"}, "loaded as int8 cannot hold"),
        ({"method": "fusion"}, "method must be one of lora, ia3, prompt-tuning, prefix-tuning, bottleneck, full"),
        ({"method": "ia3", "target_modules": ["q_proj"]}, "target_modules applies to method 'lora' only"),
        ({"method": "bottleneck", "bottleneck_placement": "parallel"}, "houlsby, pfeiffer"),
        ({"method": "prompt-tuning", "num_virtual_tokens": 0}, "num_virtual_tokens must be a positive integer"),
        ({"method": "bottleneck", "reduction_factor": 0}, "reduction_factor must be a positive integer"),
    ],
)
def test_bad_method_settings_write_nothing(
    tiny_llm_dir: Path, echo_data: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train_adapter(tiny_llm_dir, echo_data, tmp_path / "out", QLoRAConfig(**change))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_cli_refuses_full_on_the_default_4bit_base(tiny_llm_dir: Path, echo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(echo_data), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--method", "full"])
    assert result.exit_code == 2
    assert "--quantization none" in result.output
    unknown = CliRunner().invoke(app, [*args, "--method", "lora-plus"])
    assert unknown.exit_code == 2 and "method must be one of" in unknown.output
    assert not out.exists()

"""An interrupted run resumed from its checkpoint ends where the uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from lorag.training.qlora import OutputExistsError, QLoRAConfig, train_adapter


class CrashAfterSave(TrainerCallback):
    """Simulates a crash (power cut, Ctrl-C) right after the checkpoint of ``step`` is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated interruption after step {self.step}")


def config() -> QLoRAConfig:
    return QLoRAConfig(max_steps=6, save_steps=3, eval_fraction=0.0, learning_rate=5e-3, batch_size=4, seed=3)


def test_resume_continues_the_same_run(tiny_llm_nf4_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    straight = train_adapter(tiny_llm_nf4_dir, echo_jsonl, tmp_path / "straight", config(), show_progress=False)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, config(), show_progress=False, callbacks=[CrashAfterSave(3)])
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    assert not (out / "adapter_model.safetensors").exists()
    with pytest.raises(OutputExistsError, match="resume"):
        train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, config(), show_progress=False)

    resumed = train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, config(), resume=True, show_progress=False)
    assert resumed.metadata["resumed_from_step"] == 3
    assert resumed.steps == straight.steps == 6
    straight_losses = [r["loss"] for r in straight.metadata["log_history"] if "loss" in r]
    resumed_losses = [r["loss"] for r in resumed.metadata["log_history"] if "loss" in r]
    assert resumed_losses == pytest.approx(straight_losses, rel=1e-4)

    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_resume_refuses_changed_settings(tiny_llm_nf4_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, config(), show_progress=False, callbacks=[CrashAfterSave(3)])
    changed = config()
    changed.learning_rate = 1e-3
    with pytest.raises(ValueError, match=r"hyperparameters\.learning_rate"):
        train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, changed, resume=True, show_progress=False)
    assert (out / "checkpoints" / "checkpoint-3").is_dir()

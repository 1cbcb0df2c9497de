"""An interrupted run of a non-LoRA method resumes from its checkpoint and ends with the uninterrupted run's weights
(the bottleneck method's checkpoints go through peft's loader like the built-in methods')."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from lorag.training.qlora import QLoRAConfig, train_adapter

WEIGHTS = {"bottleneck": "adapter_model.safetensors", "prompt-tuning": "adapter_model.safetensors"}
WEIGHTS["full"] = "model.safetensors"


class CrashAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == 2:
            raise KeyboardInterrupt("simulated interruption after step 2")


@pytest.mark.parametrize("method", sorted(WEIGHTS))
def test_resumed_run_matches_the_straight_run(method: str, tiny_llm_dir: Path, echo_data: Path, tmp_path: Path):
    config = QLoRAConfig(
        method=method, quantization="none", max_steps=4, save_steps=2, eval_fraction=0.0, learning_rate=1e-2,
        dropout=0.0, num_virtual_tokens=4, reduction_factor=4, batch_size=4, seed=3,
    )  # fmt: skip
    train_adapter(tiny_llm_dir, echo_data, tmp_path / "straight", config, show_progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm_dir, echo_data, out, config, show_progress=False, callbacks=[CrashAfterSave()])
    resumed = train_adapter(tiny_llm_dir, echo_data, out, config, resume=True, show_progress=False)
    assert resumed.metadata["resumed_from_step"] == 2 and resumed.steps == 4

    straight, again = load_file(tmp_path / "straight" / WEIGHTS[method]), load_file(out / WEIGHTS[method])
    assert straight.keys() == again.keys()
    for key in straight:
        torch.testing.assert_close(again[key], straight[key], rtol=1e-4, atol=1e-6)

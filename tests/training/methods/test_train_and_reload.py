"""Every method trains (the loss falls), saves as safetensors only, and reloads into a model whose output differs
from the bare base; ``full`` saves a whole model instead of an adapter.

The runs repeat one record, so each step sees the same batch and the loss is free of batch-to-batch noise: any fall
is learning (a method whose parameters got no gradient would log the same loss every step).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

import lorag.peft_bottleneck  # noqa: F401  # registers the bottleneck method with peft for reloading
from lorag.training.qlora import QLoRAConfig, train_adapter

# method -> (learning rate that moves a tiny model in a few steps, adapter_config.json's peft_type)
METHODS = {
    "lora": (1e-2, "LORA"),
    "ia3": (1e-1, "IA3"),
    "prompt-tuning": (5e-1, "PROMPT_TUNING"),
    "prefix-tuning": (3e-1, "PREFIX_TUNING"),
    "bottleneck": (3e-2, "BOTTLENECK"),
}
STEPS = 10


def falling(losses: list[float]) -> bool:
    return losses[-1] < losses[0] - 0.02


def last_logits(model: torch.nn.Module, tokenizer: object) -> torch.Tensor:
    prompt = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": "user", "content": "word fox"}], tokenize=False, add_generation_prompt=True
    )
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)  # type: ignore[operator]
    with torch.no_grad():
        return model(**enc).logits[0, -1].clone()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_adapter_method_trains_saves_and_reloads(
    method: str, tiny_llm_dir: Path, one_record_data: Path, tmp_path: Path
) -> None:
    lr, peft_type = METHODS[method]
    out = tmp_path / method
    config = QLoRAConfig(
        method=method, quantization="none", max_steps=STEPS, learning_rate=lr, batch_size=4, eval_fraction=0.0,
        num_virtual_tokens=4, reduction_factor=4, warmup_ratio=0.0, lr_scheduler="constant", seed=0,
    )  # fmt: skip
    result = train_adapter(tiny_llm_dir, one_record_data, out, config, show_progress=False)

    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert len(losses) == STEPS and falling(losses), losses
    assert result.metadata["method"] == method and result.metadata["hyperparameters"]["method"] == method
    assert 0 < result.metadata["trainable_parameters"] < result.metadata["total_parameters"]
    assert {"adapter_config.json", "adapter_model.safetensors", "loss_curve.png"} <= {p.name for p in out.iterdir()}
    assert not any(p.suffix in {".bin", ".pt", ".pth", ".pkl"} for p in out.rglob("*"))
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == peft_type
    assert adapter_config["base_model_name_or_path"] == str(tiny_llm_dir)

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    bare = last_logits(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, str(out)).eval()
    assert (last_logits(tuned, tokenizer) - bare).abs().max() > 1e-2


def test_full_fine_tuning_saves_a_whole_model(tiny_llm_dir: Path, one_record_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    config = QLoRAConfig(
        method="full", quantization="none", max_steps=STEPS, learning_rate=2e-3, batch_size=4, eval_fraction=0.0,
        warmup_ratio=0.0, lr_scheduler="constant", seed=0,
    )  # fmt: skip
    result = train_adapter(tiny_llm_dir, one_record_data, out, config, show_progress=False)

    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert falling(losses), losses
    assert result.metadata["trainable_parameters"] == result.metadata["total_parameters"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "training_metadata.json"} <= names
    assert "adapter_config.json" not in names
    assert not any(p.suffix in {".bin", ".pt", ".pth", ".pkl"} for p in out.rglob("*"))

    tokenizer = AutoTokenizer.from_pretrained(out)
    bare = last_logits(AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval(), tokenizer)
    tuned = last_logits(AutoModelForCausalLM.from_pretrained(out).eval(), tokenizer)
    assert (tuned - bare).abs().max() > 1e-2


@pytest.mark.parametrize("method", ["bottleneck", "ia3"])
def test_adapter_methods_train_on_a_4bit_base(
    method: str, tiny_llm_64_dir: Path, one_record_data: Path, tmp_path: Path
):
    config = QLoRAConfig(method=method, max_steps=3, learning_rate=1e-2, batch_size=8, eval_fraction=0.0, seed=0)
    result = train_adapter(tiny_llm_64_dir, one_record_data, tmp_path / method, config, show_progress=False)
    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert result.metadata["hyperparameters"]["quantization"] == "nf4"
    assert (tmp_path / method / "adapter_model.safetensors").is_file()

"""Helpers for the LLM tests: random LoRA adapters saved with peft and a wider tiny base for 4-bit tests."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(
    base_dir: Path, out: Path, *, seed: int, r: int = 4, targets: list[str] | None = None, scale: float = 3.0
) -> Path:
    """Save a random LoRA adapter for ``base_dir`` with peft; ``scale`` makes its effect large on a tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets or TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(scale)
    peft_model.save_pretrained(out)
    return out


def write_metadata(adapter_dir: Path, fingerprint: str) -> None:
    """What lorag's QLoRA trainer writes next to an adapter: the fingerprint of the base it trained on."""
    (adapter_dir / "training_metadata.json").write_text(json.dumps({"base_model_fingerprint": fingerprint}))

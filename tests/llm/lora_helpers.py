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


def widen_tiny_llm(tiny_dir: Path, out: Path, *, hidden: int = 64, seed: int = 1) -> Path:
    """The tiny Llama with a wider hidden size (same tokenizer), so every weight row fills 4-bit blocks of 64."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(tiny_dir)
    config.hidden_size = hidden
    config.intermediate_size = 2 * hidden
    config.head_dim = hidden // config.num_attention_heads
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out


def write_metadata(adapter_dir: Path, fingerprint: str) -> None:
    """What lorag's QLoRA trainer writes next to an adapter: the fingerprint of the base it trained on."""
    (adapter_dir / "training_metadata.json").write_text(json.dumps({"base_model_fingerprint": fingerprint}))

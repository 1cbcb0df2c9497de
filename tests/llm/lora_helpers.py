"""Helpers for the LLM tests: random adapters of every kind saved with peft, and a snapshot of an engine's registry
and base to show that a refused adapter changed nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: The non-LoRA kinds lorag serves, as ``lorag train-adapter --method`` names them.
OTHER_KINDS = ("ia3", "bottleneck", "prompt-tuning", "prefix-tuning")
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


def snapshot(engine: Any) -> tuple:
    """Registry listing, module structure and a hash of every base tensor."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(engine.base.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    modules = tuple((n, type(m).__name__) for n, m in engine.base.model.named_modules())
    return engine.adapters.list(), engine.adapters.resident(), modules, h.hexdigest(), engine.adapters.has_adapters


def assert_unchanged(engine: Any, before: tuple, reference: Any) -> None:
    assert snapshot(engine) == before
    again = engine.generate("The quick brown fox", adapter="a0", max_tokens=8)
    assert again.token_logprobs == reference.token_logprobs


def write_metadata(adapter_dir: Path, fingerprint: str) -> None:
    """What lorag's QLoRA trainer writes next to an adapter: the fingerprint of the base it trained on."""
    (adapter_dir / "training_metadata.json").write_text(json.dumps({"base_model_fingerprint": fingerprint}))


def make_kind_adapter(base_dir: Path, out: Path, kind: str, *, seed: int, virtual_tokens: int = 4) -> Path:
    """Save a random adapter of ``kind`` (``lorag train-adapter --method`` names) for ``base_dir`` with peft.

    Every weight is drawn away from the method's neutral start (IA3 ones, a bottleneck's zero up projection), so the
    adapter really changes the outputs of a tiny model.
    """
    import torch
    from peft import IA3Config, PrefixTuningConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lorag.peft_bottleneck import BottleneckConfig

    configs = {
        "ia3": lambda: IA3Config(task_type="CAUSAL_LM"),
        "bottleneck": lambda: BottleneckConfig(task_type="CAUSAL_LM", reduction_factor=4),
        "prompt-tuning": lambda: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens),
        "prefix-tuning": lambda: PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens),
    }
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, configs[kind]())
    with torch.no_grad():
        spread = {"ia3": 0.5, "bottleneck": 0.2}.get(kind, 1.0)
        for param in peft_model.parameters():
            if param.requires_grad:
                param.copy_((1.0 if kind == "ia3" else 0.0) + spread * torch.randn_like(param))
    peft_model.save_pretrained(out)
    return out

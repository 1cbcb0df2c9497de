"""The training methods: a peft config per adapter method, picked by name; ``full`` trains the base itself.

Each builder only translates ``QLoRAConfig`` into the method's peft config; ``QLoRAConfig.validate`` has already
refused the combinations that cannot work (``full`` on a quantized base, LoRA-only settings on other methods).
Importing ``lorag.peft_bottleneck`` registers the bottleneck method with peft, so peft saves and reloads it like the
others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorag.training.config import VIRTUAL_TOKEN_METHODS, QLoRAConfig

#: Plot titles and log lines.
METHOD_LABELS: dict[str, str] = {
    "lora": "LoRA",
    "ia3": "IA3",
    "prompt-tuning": "prompt tuning",
    "prefix-tuning": "prefix tuning",
    "bottleneck": "bottleneck adapters",
    "full": "full fine-tuning",
}


def _lora(config: QLoRAConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _ia3(config: QLoRAConfig) -> Any:
    from peft import IA3Config

    return IA3Config(task_type="CAUSAL_LM")  # peft's per-architecture keys, values and feed-forward (Liu et al.)


def _prompt_tuning(config: QLoRAConfig) -> Any:
    from peft import PromptTuningConfig

    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens)


def _prefix_tuning(config: QLoRAConfig) -> Any:
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens)


def _bottleneck(config: QLoRAConfig) -> Any:
    from lorag.peft_bottleneck import BottleneckConfig

    return BottleneckConfig(
        task_type="CAUSAL_LM",
        placement=config.bottleneck_placement,
        reduction_factor=config.reduction_factor,
        dropout=config.dropout,
    )


_PEFT_BUILDERS: dict[str, Callable[[QLoRAConfig], Any]] = {
    "lora": _lora,
    "ia3": _ia3,
    "prompt-tuning": _prompt_tuning,
    "prefix-tuning": _prefix_tuning,
    "bottleneck": _bottleneck,
}


def peft_config_for(config: QLoRAConfig) -> Any | None:
    """The peft config ``config.method`` trains, or ``None`` for ``full`` (no adapter)."""
    if config.method == "full":
        return None
    return _PEFT_BUILDERS[config.method](config)


def make_trainable(model: Any, config: QLoRAConfig) -> Any:
    """Wrap the loaded base in the method's adapter (only it trains), or unfreeze every weight for ``full``.

    With a float ``quant_storage`` (FSDP-QLoRA) the adapter keeps the base's dtype instead of peft's float32, so
    each FSDP unit holds one dtype.
    """
    peft_config = peft_config_for(config)
    if peft_config is None:
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    from lorag.training.loading import sharded_storage

    return get_peft_model(model, peft_config, autocast_adapter_dtype=not sharded_storage(config))


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, counted the same way for adapters and full fine-tuning."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def reserved_positions(config: QLoRAConfig) -> int:
    """Context positions the method's virtual tokens take, so real tokens must leave them free."""
    return config.num_virtual_tokens if config.method in VIRTUAL_TOKEN_METHODS else 0

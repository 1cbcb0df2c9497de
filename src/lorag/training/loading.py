"""Loading the base (and the teacher) quantized as the run asks, ready for the chosen training method."""

from __future__ import annotations

from typing import Any

from lorag._imports import require
from lorag.llm.loading import bnb_config
from lorag.training.config import QLoRAConfig


def compute_dtype(name: str) -> Any:
    """``"auto"``: float32 on CPU (bfloat16 is slower there without AMX), bfloat16 (or float16) on a GPU."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def sharded_storage(config: QLoRAConfig) -> bool:
    """True when the 4-bit weights are stored in a float dtype so that FSDP can shard them (FSDP-QLoRA)."""
    return config.quantization == "nf4" and config.quant_storage != "uint8"


def load_frozen_model(path: str, config: QLoRAConfig) -> Any:
    """The model at ``path``, quantized as ``config`` says; nothing prepared for training (a teacher uses this).

    With a float ``quant_storage`` the whole model loads in that dtype, as bitsandbytes' FSDP-QLoRA guide asks:
    FSDP then wraps the 4-bit layers with the others instead of one by one.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, config.quant_storage) if sharded_storage(config) else compute_dtype(config.compute_dtype)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.quantization != "none":
        require("bitsandbytes", purpose=f"{config.quantization} quantization")
        kwargs["quantization_config"] = bnb_config(
            config.quantization,
            compute_dtype=dtype,
            double_quant=config.double_quant,
            quant_storage=getattr(torch, config.quant_storage),
        )
    if config.quantization != "none" and torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)


def load_base_model(path: str, config: QLoRAConfig) -> Any:
    """The base, quantized as ``config`` says and prepared for k-bit training where that applies."""
    peft = require("peft", purpose="adapters")
    model = load_frozen_model(path, config)
    if sharded_storage(config):
        # peft's k-bit preparation would upcast the norms and embeddings to float32, leaving layers of mixed dtypes
        # that FSDP cannot flatten; keep one dtype and do only the rest of it (TRL does the same for FSDP-QLoRA).
        for param in model.parameters():
            param.requires_grad_(False)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    elif config.quantization != "none":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model

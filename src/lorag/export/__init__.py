"""Adapter export: lorag / peft LoRA adapters turned into what serving engines load.

``to_gguf`` writes llama.cpp's LoRA GGUF (``llama-server --lora FILE``); ``to_vllm`` checks an adapter against what
vLLM's ``--lora-modules`` accepts and writes the peft layout it reads. Both refuse, before writing anything, what the
engine would reject or silently serve wrong, and name the file and the fix. ``lorag export-adapter`` is the CLI.
"""

from __future__ import annotations

from lorag.export.base_model import BaseModel, load_base_model
from lorag.export.llama_cpp import to_gguf
from lorag.export.lora_adapter import AdapterExportError, LoraAdapter, load_lora_adapter
from lorag.export.vllm import to_vllm

__all__ = [
    "AdapterExportError",
    "BaseModel",
    "LoraAdapter",
    "load_base_model",
    "load_lora_adapter",
    "to_gguf",
    "to_vllm",
]

"""lorag LLM for LlamaIndex: a quantized base with per-request LoRA adapters."""

from llama_index.llms.lorag.base import LoragLLM

__all__ = ["LoragLLM"]

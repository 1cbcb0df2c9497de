"""Serving lorag's adapters on an engine built for it.

- ``llama_server``: build llama.cpp's ``llama-server`` from a pinned, pip-fetchable source, cache the binary under
  ``LORAG_HOME``, and start / stop a server on 127.0.0.1 with lorag's exported GGUF adapters.

The client side (``ChatLorag(base_url=...)``, LlamaIndex's ``LoragLLM(base_url=...)``) is ``lorag.llm.remote``.
"""

from __future__ import annotations

from lorag.serving.llama_server import (
    LLAMA_CPP_PYTHON_VERSION,
    LlamaServer,
    LlamaServerError,
    LlamaServerNotBuiltError,
    build_llama_server,
    cached_llama_server,
    ensure_llama_server,
)

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaServer",
    "LlamaServerError",
    "LlamaServerNotBuiltError",
    "build_llama_server",
    "cached_llama_server",
    "ensure_llama_server",
]

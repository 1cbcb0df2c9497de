"""``RemoteEngine``: the wrappers' engine interface over a server that already serves the base and its adapters.

A user whose traffic outgrows one process serves the base with an engine built for it (vLLM on a GPU host,
llama.cpp's ``llama-server`` on CPUs) and keeps the chain code: ``ChatLorag(base_url=..., backend=...)`` and
LlamaIndex's ``LoragLLM(base_url=...)`` hold a ``RemoteEngine`` where they would hold a ``LoragEngine`` and call the
same methods (``generate`` / ``agenerate`` / ``stream`` / ``astream`` with ``adapter=`` and the sampling options,
``adapter_version``, ``adapters.register``), so every wrapper feature built on those (``bind``, configurable
fields, callbacks, caches, tool calls, structured output, LlamaIndex query engines) works unchanged.

**Adapter per request.** ``adapter="name"`` maps, per backend:

- ``vllm`` and ``openai-compatible``: to the request's ``model`` field (vLLM serves ``--lora-modules name=path`` and
  runtime ``/v1/load_lora_adapter`` adapters under their names). ``adapters={"name": "served-name"}`` renames; an
  unmapped name is sent as is. With ``vllm`` the name is checked against ``GET /v1/models`` first, so a missing
  adapter is an ``UnknownAdapterError`` naming what the server has, not a 404 from deep inside a chain.
- ``llama.cpp``: to ``"lora": [{"id": i, "scale": 1.0}]``, the ids read from the server's ``GET /lora-adapters`` and
  matched by the GGUF's path, file name or stem (``adapters={"legal": "legal.gguf"}``; an unmapped name matches a
  file stem). No adapter sends every id at scale 0: an empty list would mean the server's own default scales.

**Client.** The official ``openai`` package (``pip install "lorag[remote]"``), not hand-written HTTP: it already has
what a remote engine needs and is easy to get subtly wrong, namely per-attempt timeouts (httpx), retries with
exponential backoff on connection errors, 408, 409, 429 and 5xx (honouring ``Retry-After``), server-sent-event
streaming, and sync and async clients with one API. Server-specific fields (llama.cpp's ``lora``, ``top_k``,
``min_p``, ``repeat_penalty``; vLLM's ``top_k``, ``repetition_penalty``, ``min_tokens``) travel in ``extra_body``;
the two endpoints outside OpenAI's API (``/lora-adapters``, ``/tokenize``) are read through the same client, with the
same timeout, retries and key. Not ``langchain-openai``: the core stays framework-free, and one engine serves both
the LangChain and the LlamaIndex wrappers.

**What differs from the local engine.** The server owns the weights, so an adapter's version is the server's identity
of it (backend, URL, served name or GGUF path), not a hash of its files; ``token_ids`` and ``token_logprobs`` of a
result are empty; sampling options a backend cannot honour exactly (``no_repeat_ngram_size`` anywhere,
``min_tokens`` on llama.cpp) raise ``ValueError`` instead of being dropped; tool calls and JSON-schema output are the
server's (vLLM needs ``--enable-auto-tool-choice --tool-call-parser ...``; llama-server its default ``--jinja``).
In a stream, tool calls arrive with the last piece as ``<tool_call>`` blocks, the form the wrappers already read.

The package, one job per module:

- ``engine``: ``RemoteEngine``, the client and the requests it sends.
- ``adapters``: ``RemoteAdapters``, a lorag adapter name resolved to the server's (served name or llama.cpp lora id).
- ``wire``: lorag's sampling options, messages and results in the OpenAI wire format, streams folded into deltas.
- ``errors``: ``RemoteError`` and its kinds; the client's exceptions mapped to them.
- ``options``: ``RemoteOptions`` and its pydantic twin for the LangChain and LlamaIndex wrappers.
"""

from __future__ import annotations

from lorag.llm.remote.adapters import RemoteAdapters
from lorag.llm.remote.engine import RemoteEngine
from lorag.llm.remote.errors import (
    LoraUnsupportedError,
    RemoteConnectionError,
    RemoteError,
    RemoteStatusError,
    RemoteTimeoutError,
    ToolCallUnsupportedError,
)
from lorag.llm.remote.options import BACKENDS, NO_KEY, Backend, RemoteOptions, remote_options_model
from lorag.llm.remote.wire import Message

__all__ = [
    "BACKENDS",
    "NO_KEY",
    "Backend",
    "LoraUnsupportedError",
    "Message",
    "RemoteAdapters",
    "RemoteConnectionError",
    "RemoteEngine",
    "RemoteError",
    "RemoteOptions",
    "RemoteStatusError",
    "RemoteTimeoutError",
    "ToolCallUnsupportedError",
    "remote_options_model",
]

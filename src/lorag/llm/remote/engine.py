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
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, ClassVar, Literal, get_args

from lorag.llm.adapters import BASE_ADAPTER, UnknownAdapterError
from lorag.llm.generation import FinishReason, GenerationResult, SamplingParams, TextDelta, Usage
from lorag.llm.structured import strict_schema
from lorag.llm.tools import CLOSE, OPEN, InvalidToolCall, ToolCall, ToolReply, prepare_tools

Backend = Literal["vllm", "llama.cpp", "openai-compatible"]
BACKENDS: tuple[str, ...] = get_args(Backend)
#: Sent as the bearer token when no key is given: a self-hosted server without ``--api-key`` ignores it, and the
#: user's ``OPENAI_API_KEY`` is never sent to a server that did not ask for it.
NO_KEY = "no-key"
Message = Mapping[str, Any]


class RemoteError(RuntimeError):
    """A remote server could not serve a request; the message names the server and what to check."""


class RemoteConnectionError(RemoteError, ConnectionError):
    """The server did not accept a connection (not running, wrong host or port), after every retry."""


class RemoteTimeoutError(RemoteError, TimeoutError):
    """The server accepted the request but did not answer within the timeout, after every retry."""


class RemoteStatusError(RemoteError):
    """The server answered with an error status (after the retries for 429 and 5xx)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class LoraUnsupportedError(RemoteError):
    """The server cannot select LoRA adapters per request (no ``/lora-adapters``, or none loaded)."""


class ToolCallUnsupportedError(RemoteError):
    """A call was forced (``tool_choice`` required or a tool's name) and the server answered without one: its chat
    template or tool parser does not do tools (llama-server ignores tools for a template without them)."""


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RemoteOptions:
    """Which server a wrapper talks to instead of loading a base locally (``base_url`` None: local)."""

    base_url: str | None = field(
        default=None,
        metadata=_doc(
            "OpenAI-compatible server URL (``http://host:8000/v1``; a bare ``http://host:port`` gets ``/v1``). "
            "Set: the calls go to that server instead of a local engine."
        ),
    )
    api_key: str | None = field(
        default=None, metadata=_doc("Bearer token for a server started with an API key (never OPENAI_API_KEY).")
    )
    backend: Backend = field(
        default="openai-compatible",
        metadata=_doc(
            "vllm (adapter = the model field, checked against /v1/models), llama.cpp (adapter = the lora list, ids "
            "from /lora-adapters) or openai-compatible (adapter = the model field, unchecked)."
        ),
    )
    timeout: float = field(default=60.0, metadata=_doc("Seconds one attempt may take (connecting: at most 10)."))
    max_retries: int = field(
        default=2, metadata=_doc("Retries on connection errors, timeouts, 408/409/429 and 5xx, with backoff.")
    )
    extra_body: dict[str, Any] | None = field(
        default=None,
        metadata=_doc(
            "Server-specific fields sent with every request, under lorag's own (llama.cpp's cache_prompt, vLLM's "
            "priority, ...)."
        ),
    )


class RemoteAdapters:
    """The adapters a ``RemoteEngine`` may name: lorag name -> the server's name for it (a served LoRA name, or a
    llama.cpp GGUF path / file name / stem). Resolved against the server lazily and cached; a miss re-reads the
    server once, since both servers can load adapters at run time."""

    def __init__(self, engine: RemoteEngine, mapping: Mapping[str, str] | None = None) -> None:
        self._engine = engine
        self._mapping: dict[str, str] = {}
        self._resolved: dict[str, Any] = {}
        self._lock = threading.Lock()
        for name, target in (mapping or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str | os.PathLike[str]) -> None:
        """Map ``name`` to the server's adapter ``target``; the same mapping twice is fine, another is an error."""
        if not isinstance(name, str) or not name or name == BASE_ADAPTER:
            raise ValueError(f"an adapter name must be a non-empty string other than {BASE_ADAPTER!r}, got {name!r}")
        target = os.fspath(target)
        with self._lock:
            known = self._mapping.get(name)
            if known is not None and known != target:
                raise ValueError(f"adapter {name!r} is already mapped to {known!r}, not {target!r}")
            self._mapping[name] = target

    def names(self) -> list[str]:
        """The registered lorag names."""
        return sorted(self._mapping)

    def target(self, name: str) -> str:
        """The server's name for ``name`` (itself when unmapped)."""
        return self._mapping.get(name, name)

    def resolve(self, name: str | None) -> Any:
        """What a request for ``name`` sends: the served model name, or llama.cpp's lora id (None: the base).

        Raises:
            UnknownAdapterError: The server has no such adapter (the message lists those it has).
            LoraUnsupportedError: The server cannot apply adapters per request.
        """
        if name is None or name == BASE_ADAPTER:
            return None
        with self._lock:
            if name in self._resolved:
                return self._resolved[name]
        value = self._engine._resolve_adapter(name, self.target(name))
        with self._lock:
            self._resolved[name] = value
        return value

    def version(self, name: str | None) -> str:
        """The server's identity of an adapter, for cache keys (see the module doc); resolves it first."""
        resolved = self.resolve(name)
        return f"{self._engine.backend}@{self._engine.base_url}#{'base' if resolved is None else resolved}"


class RemoteEngine:
    """Serve requests from a vLLM, llama.cpp or other OpenAI-compatible server, adapters chosen per request.

    Args:
        base_url: The server's OpenAI API root (``http://host:8000/v1``; without a path, ``/v1`` is added).
        backend: ``vllm``, ``llama.cpp`` or ``openai-compatible`` (see the module doc for what each maps).
        model: The base model's name on the server (the ``model`` field when no adapter is chosen). With ``vllm`` a
            lorag short name matches the served hub id by its last part (``smollm2-135m-instruct`` ->
            ``HuggingFaceTB/SmolLM2-135M-Instruct``); llama.cpp serves one model and ignores it.
        adapters: lorag adapter name -> the server's name for it (``RemoteAdapters``).
        api_key: Bearer token, for a server started with one.
        timeout: Seconds one attempt may take (connecting: at most 10).
        max_retries: Retries on connection errors, timeouts, 408/409/429 and 5xx, with exponential backoff.
        context_window: The model's window, if known (else read from the server where it says).
        extra_body: Server-specific fields sent with every request; lorag's own fields (``lora``, ``top_k``, ...)
            take precedence. E.g. ``{"cache_prompt": False}``: llama-server reuses a cached prompt's KV and
            re-evaluates only its last token, which can change a greedy reply (measured on SmolLM2-135M Q4_1: the
            same request answered " Paris. It is the largest city in", then " Paris. It's a city that's").

    Raises:
        ImportError: ``openai`` is not installed (``pip install "lorag[remote]"``).
        ValueError: An unknown backend or a URL that is not http(s).
    """

    tokenizer: Any = None
    """No local tokenizer: ``tokenize`` asks the server."""

    def __init__(
        self,
        base_url: str,
        *,
        backend: Backend = "openai-compatible",
        model: str | None = None,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        context_window: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}")
        if timeout <= 0 or max_retries < 0:
            raise ValueError(f"timeout must be > 0 and max_retries >= 0, got {timeout!r} and {max_retries!r}")
        try:
            import openai
        except ImportError as err:
            raise ImportError('a remote server needs the openai client: pip install "lorag[remote]"') from err
        self._openai = openai
        self.backend: Backend = backend
        self.base_url = _api_root(base_url)
        self.server_root = self.base_url.removesuffix("/v1")
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._api_key = api_key or NO_KEY
        self._context_window = context_window
        self.extra_body = dict(extra_body or {})
        self._client = openai.OpenAI(**self._client_options())
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._served_model: str | None = None
        self._loras: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self.adapters = RemoteAdapters(self, {k: os.fspath(v) for k, v in (adapters or {}).items()})

    _shared: ClassVar[dict[tuple[Any, ...], RemoteEngine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, base_url: str, **kwargs: Any) -> RemoteEngine:
        """One engine (one connection pool, one adapter lookup) per server and settings in this process, as
        ``LoragEngine.shared`` is per base; ``adapters`` are registered on it (another target for a name is an
        error)."""
        adapters = kwargs.pop("adapters", None) or {}
        key = (base_url, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        with cls._shared_lock:
            engine = cls._shared.get(key)
            if engine is None:
                engine = cls._shared[key] = cls(base_url, **kwargs)
        for name, target in adapters.items():
            engine.adapters.register(name, target)
        return engine

    def _client_options(self) -> dict[str, Any]:
        timeout = self._openai.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        return {
            "base_url": self.base_url,
            "api_key": self._api_key,
            "timeout": timeout,
            "max_retries": self.max_retries,
        }

    def _async_client(self) -> Any:
        """One async client per event loop: an httpx connection pool is bound to the loop that opened it."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = self._openai.AsyncOpenAI(**self._client_options())
        return client

    def __repr__(self) -> str:
        return f"RemoteEngine({self.base_url!r}, backend={self.backend!r}, model={self.model!r})"

    # ------------------------------------------------------------------ server info

    def _get(self, path: str) -> Any:
        """GET an endpoint outside the OpenAI API (``/lora-adapters``), relative to the server root."""
        with self._errors():
            return self._client.get(f"{self.server_root}{path}", cast_to=object)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        with self._errors():
            return self._client.post(f"{self.server_root}{path}", body=dict(body), cast_to=object)

    def _models(self) -> list[dict[str, Any]]:
        with self._errors():
            listing = self._client.get("/models", cast_to=object)
        data = listing.get("data", []) if isinstance(listing, dict) else []
        return [m for m in data if isinstance(m, dict)]

    def served_model(self) -> str:
        """The ``model`` field of a request without an adapter (see ``model`` in the class doc)."""
        with self._lock:
            if self._served_model is not None:
                return self._served_model
        if self.backend != "vllm":
            name = self.model or "default"
        else:
            bases = [m["id"] for m in self._models() if not m.get("parent")]
            name = _match_model(self.model, bases, self.base_url)
        with self._lock:
            self._served_model = name
        return name

    @property
    def context_window(self) -> int:
        """The model's context window: as given, else as the server reports it (llama.cpp's ``n_ctx`` per slot,
        vLLM's ``max_model_len``), else 2048."""
        if self._context_window is None:
            self._context_window = self._read_context_window() or 2048
        return self._context_window

    def _read_context_window(self) -> int | None:
        try:
            if self.backend == "llama.cpp":
                props = self._get("/props")
                return int(props["default_generation_settings"]["n_ctx"])
            for entry in self._models():
                if entry.get("id") == self.served_model() and entry.get("max_model_len"):
                    return int(entry["max_model_len"])
        except (RemoteError, KeyError, TypeError, ValueError):
            return None
        return None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` under the server's tokenizer, no special tokens (llama.cpp and vLLM's
        ``/tokenize``)."""
        if self.backend == "llama.cpp":
            reply = self._post("/tokenize", {"content": text, "add_special": False})
        else:
            body = {"model": self.served_model(), "prompt": text, "add_special_tokens": False}
            reply = self._post("/tokenize", body)
        return [int(t) for t in reply["tokens"]]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    # ------------------------------------------------------------------ adapters

    def adapter_version(self, adapter: str | None) -> str:
        """The server's identity of an adapter (or of the base for None), for cache keys."""
        return self.adapters.version(adapter)

    def _resolve_adapter(self, name: str, target: str) -> Any:
        if self.backend == "llama.cpp":
            return self._lora_id(name, target)
        if self.backend == "vllm":
            models: list[dict[str, Any]] = []
            for _ in range(2):  # a miss re-reads: adapters load at run time (/v1/load_lora_adapter)
                models = self._models()
                if any(m.get("id") == target for m in models):
                    return target
            loras = [m["id"] for m in models if m.get("parent")]
            if not loras:
                raise LoraUnsupportedError(
                    f"the vLLM server at {self.base_url} serves no LoRA adapters, so adapter {name!r} cannot be "
                    f"chosen; start it with --enable-lora --lora-modules {target}=ADAPTER_DIR"
                )
            raise UnknownAdapterError(
                f"the vLLM server at {self.base_url} has no adapter {target!r} (for {name!r}); it serves {loras}"
            )
        return target

    def _lora_list(self, refresh: bool = False) -> list[dict[str, Any]]:
        """``GET /lora-adapters``, read once (llama-server loads its adapters at start-up only)."""
        with self._lock:
            if self._loras is not None and not refresh:
                return self._loras
        try:
            listing = self._get("/lora-adapters")
        except RemoteStatusError as err:
            if err.status_code in (404, 405, 501):
                raise LoraUnsupportedError(
                    f"the server at {self.server_root} has no /lora-adapters endpoint ({err.status_code}): it is not "
                    f"llama.cpp's llama-server; for vLLM use backend='vllm', else backend='openai-compatible'"
                ) from err
            raise
        if not isinstance(listing, list):
            raise LoraUnsupportedError(f"{self.server_root}/lora-adapters answered {listing!r}, not a list")
        loaded = [entry for entry in listing if isinstance(entry, dict)]
        with self._lock:
            self._loras = loaded
        return loaded

    def _lora_id(self, name: str, target: str) -> int:
        loaded: list[dict[str, Any]] = []
        for attempt in range(2):
            loaded = self._lora_list(refresh=attempt > 0)
            for entry in loaded:
                path = str(entry.get("path", ""))
                if target in (path, PurePath(path).name, PurePath(path).stem, str(entry.get("id"))):
                    return int(entry["id"])
        if not loaded:
            raise LoraUnsupportedError(
                f"the llama-server at {self.server_root} loaded no LoRA adapters, so adapter {name!r} cannot be "
                f"chosen; start it with --lora {target if target.endswith('.gguf') else name + '.gguf'} "
                f"(lorag export-adapter --format gguf)"
            )
        served = [f"{e.get('id')}: {e.get('path')}" for e in loaded]
        raise UnknownAdapterError(
            f"the llama-server at {self.server_root} has no adapter {target!r} (for {name!r}); it loaded {served}"
        )

    # ------------------------------------------------------------------ requests

    def _request(
        self,
        prompt: str | None,
        messages: Sequence[Message] | None,
        adapter: str | None,
        *,
        tools: Sequence[Any] | None = None,
        tool_choice: str = "auto",
        json_schema: Mapping[str, Any] | None = None,
        json_mode: bool = False,
        stream: bool,
        **sampling: Any,
    ) -> tuple[str, dict[str, Any], bool]:
        """The client method (``chat`` / ``completions``), its keyword arguments, and whether calls are read."""
        if "grammar" in sampling or "params" in sampling or "sequence_bias" in sampling:
            raise ValueError(
                "a remote server takes json_schema= or tools=, not a lorag grammar, params or sequence_bias"
            )
        params = SamplingParams(**sampling)
        if (prompt is None) == (messages is None):
            raise ValueError("give exactly one of prompt= or messages=")
        if prompt is not None and (tools or json_schema is not None):
            raise ValueError("tools and json_schema need messages=, not a plain prompt")
        if prompt is not None and not prompt:
            raise ValueError("the prompt is empty")
        resolved = self.adapters.resolve(adapter)
        body, extra = self._sampling(params)
        if self.backend == "llama.cpp":
            body["model"] = self.served_model()
            scales = self._lora_scales(resolved)
            if scales:
                extra["lora"] = scales
        else:
            body["model"] = resolved if resolved is not None else self.served_model()
        offered = prepare_tools(tools or (), tool_choice)
        read_calls = bool(offered) and tool_choice != "none"
        if offered:
            body["tools"] = [tool.to_openai() for tool in offered]
            body["tool_choice"] = (
                tool_choice
                if tool_choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": tool_choice}}
            )
        if json_schema is not None:
            if read_calls:
                raise ValueError("give either tools or json_schema: tool calls carry their own schema")
            schema = dict(json_schema) if json_mode else strict_schema(dict(json_schema))
            if json_mode and self.backend == "llama.cpp":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": not json_mode},
                }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        extra = {**self.extra_body, **extra}
        if extra:
            body["extra_body"] = extra
        if messages is not None:
            body["messages"] = [_wire_message(m) for m in messages]
            return "chat", body, read_calls
        body["prompt"] = prompt
        return "completions", body, read_calls

    def _sampling(self, params: SamplingParams) -> tuple[dict[str, Any], dict[str, Any]]:
        """OpenAI fields and backend extras meaning what ``SamplingParams`` means, or ``ValueError``."""
        body: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature}
        extra: dict[str, Any] = {}
        if params.top_p != 1.0:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.no_repeat_ngram_size:
            raise ValueError(f"no_repeat_ngram_size is not available on a {self.backend} server; leave it 0")
        if self.backend == "llama.cpp":
            # llama-server's own defaults (top_k 40, top_p 0.95, min_p 0.05) would change sampled outputs
            extra.update(top_k=params.top_k, top_p=params.top_p, min_p=0.0)
            if params.repetition_penalty != 1.0:
                extra.update(repeat_penalty=params.repetition_penalty, repeat_last_n=-1)
            if params.min_tokens:
                raise ValueError("min_tokens is not available on a llama.cpp server; leave it 0")
        else:
            if params.top_k:
                extra["top_k"] = params.top_k
            if params.repetition_penalty != 1.0:
                extra["repetition_penalty"] = params.repetition_penalty
            if params.min_tokens:
                extra["min_tokens"] = params.min_tokens
        return body, extra

    def _lora_scales(self, lora_id: int | None) -> list[dict[str, Any]]:
        """llama.cpp's per-request ``lora`` list: the chosen id at 1, or every loaded id at 0 for the base (an empty
        list means the server's global scales: 1 for each ``--lora``, even under ``--lora-init-without-apply``)."""
        if lora_id is not None:
            return [{"id": lora_id, "scale": 1.0}]
        try:
            loaded = self._lora_list()
        except LoraUnsupportedError:  # a server without adapters serves the base as it is
            return []
        return [{"id": int(entry["id"]), "scale": 0.0} for entry in loaded]

    def _errors(self, adapter: str | None = None) -> _ErrorMapper:
        return _ErrorMapper(self, adapter)

    # ------------------------------------------------------------------ the engine interface

    def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **options: Any,
    ) -> GenerationResult:
        """One completion (blocking). ``options``: the sampling options of ``LoragEngine.submit``, ``tools`` /
        ``tool_choice``, and ``json_schema`` (+ ``json_mode``: the schema as given, not closed)."""
        kind, body, read_calls = self._request(prompt, messages, adapter, stream=False, **options)
        with self._errors(adapter):
            reply = self._endpoint(self._client, kind).create(**body)
        return self._checked(self._result(reply, kind, adapter, read_calls), body)

    async def agenerate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **options: Any,
    ) -> GenerationResult:
        """Async ``generate``: awaits the server without blocking the event loop."""
        kind, body, read_calls = await asyncio.to_thread(
            self._request, prompt, messages, adapter, stream=False, **options
        )
        with self._errors(adapter):
            reply = await self._endpoint(self._async_client(), kind).create(**body)
        return self._checked(self._result(reply, kind, adapter, read_calls), body)

    def stream(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **options: Any,
    ) -> Iterator[TextDelta]:
        """Text pieces as the server sends them; the last has ``finish_reason``, ``usage`` and any tool calls as
        ``<tool_call>`` blocks."""
        kind, body, _ = self._request(prompt, messages, adapter, stream=True, **options)
        state = _StreamState(kind)
        with self._errors(adapter):
            for chunk in self._endpoint(self._client, kind).create(**body):
                delta = state.push(chunk)
                if delta is not None:
                    yield delta
        yield self._checked_stream(state, body)

    async def astream(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **options: Any,
    ) -> AsyncIterator[TextDelta]:
        """Async ``stream``."""
        kind, body, _ = await asyncio.to_thread(self._request, prompt, messages, adapter, stream=True, **options)
        state = _StreamState(kind)
        with self._errors(adapter):
            async for chunk in await self._endpoint(self._async_client(), kind).create(**body):
                delta = state.push(chunk)
                if delta is not None:
                    yield delta
        yield self._checked_stream(state, body)

    def _checked(self, result: GenerationResult, body: Mapping[str, Any]) -> GenerationResult:
        called = result.tool_reply is not None and (
            result.tool_reply.tool_calls or result.tool_reply.invalid_tool_calls
        )
        self._check_forced_call(body, bool(called))
        return result

    def _checked_stream(self, state: _StreamState, body: Mapping[str, Any]) -> TextDelta:
        self._check_forced_call(body, bool(state.calls))
        return state.finish()

    def _check_forced_call(self, body: Mapping[str, Any], called: bool) -> None:
        choice = body.get("tool_choice")
        if body.get("tools") and choice not in (None, "auto", "none") and not called:
            raise ToolCallUnsupportedError(
                f"a tool call was forced but the {self.backend} server at {self.base_url} answered without one: its "
                f"chat template or tool parser does not do tools (llama-server: a --chat-template-file with tools; "
                f"vLLM: --enable-auto-tool-choice --tool-call-parser NAME); for structured output use "
                f"with_structured_output(method='json_schema')"
            )

    @staticmethod
    def _endpoint(client: Any, kind: str) -> Any:
        return client.chat.completions if kind == "chat" else client.completions

    def _result(self, reply: Any, kind: str, adapter: str | None, read_calls: bool) -> GenerationResult:
        choice = reply.choices[0]
        usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens) if reply.usage else Usage(0, 0)
        tool_reply = None
        if kind == "chat":
            text = choice.message.content or ""
            calls = [_tool_call(c.function.name, c.function.arguments, c.id) for c in choice.message.tool_calls or ()]
            if read_calls:
                valid = [c for c in calls if isinstance(c, ToolCall)]
                tool_reply = ToolReply(text, valid, [c for c in calls if isinstance(c, InvalidToolCall)])
            text += "".join(_call_block(c) for c in calls)
        else:
            text = choice.text or ""
        return GenerationResult(
            text=text,
            token_ids=[],
            finish_reason=_finish_reason(choice.finish_reason),
            usage=usage,
            adapter=adapter if adapter is not None else BASE_ADAPTER,
            adapter_version=self.adapter_version(adapter),
            tool_reply=tool_reply,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _api_root(url: str) -> str:
    url = url.rstrip("/")
    _, _, rest = url.partition("://")
    return url if "/" in rest else f"{url}/v1"


def _match_model(wanted: str | None, served: list[str], where: str) -> str:
    if not served:
        raise RemoteError(f"the server at {where} lists no base model in /v1/models")
    if wanted is None:
        return served[0]
    if wanted in served:
        return wanted
    tail = wanted.rsplit("/", 1)[-1].lower()
    matches = [name for name in served if name.rsplit("/", 1)[-1].lower() == tail]
    if len(matches) == 1:
        return matches[0]
    raise RemoteError(f"the server at {where} does not serve model {wanted!r}; it serves {served}")


def _wire_message(message: Message) -> dict[str, Any]:
    """A chat message as OpenAI's API takes it: call arguments as JSON text."""
    out = dict(message)
    if out.get("tool_calls"):
        calls = []
        for call in out["tool_calls"]:
            function = dict(call.get("function", {}))
            if not isinstance(function.get("arguments"), str):
                function["arguments"] = json.dumps(function.get("arguments") or {})
            calls.append({**call, "type": "function", "function": function})
        out["tool_calls"] = calls
    return out


def _tool_call(name: str, arguments: str | None, call_id: str | None) -> ToolCall | InvalidToolCall:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError as err:
        return InvalidToolCall(json.dumps({"name": name, "arguments": arguments}), f"arguments are not JSON: {err}")
    if not isinstance(parsed, dict):
        return InvalidToolCall(json.dumps({"name": name, "arguments": parsed}), "the arguments are not an object")
    return ToolCall(name, parsed, call_id) if call_id else ToolCall(name, parsed)


def _call_block(call: ToolCall | InvalidToolCall) -> str:
    """A call as the ``<tool_call>`` block the wrappers' stream readers parse."""
    if isinstance(call, InvalidToolCall):
        return f"{OPEN}\n{call.text}\n{CLOSE}"
    return f"{OPEN}\n{json.dumps({'name': call.name, 'arguments': call.arguments})}\n{CLOSE}"


def _finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


class _StreamState:
    """Folds a stream's chunks into ``TextDelta``s: content as it comes, tool-call fragments gathered by index."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self.calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._pieces = 0

    def push(self, chunk: Any) -> TextDelta | None:
        if getattr(chunk, "usage", None):
            self._usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self._finish = choice.finish_reason
        if self._kind == "completions":
            text = choice.text or ""
        else:
            text = choice.delta.content or ""
            for part in choice.delta.tool_calls or ():
                call = self.calls.setdefault(part.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
        if not text:
            return None
        self._pieces += 1
        return TextDelta(text=text, token_id=None)

    def finish(self) -> TextDelta:
        calls = [_tool_call(c["name"], c["arguments"], c["id"]) for _, c in sorted(self.calls.items())]
        usage = self._usage or Usage(0, self._pieces)
        return TextDelta("".join(map(_call_block, calls)), None, _finish_reason(self._finish), usage)


class _ErrorMapper:
    """Turns the client's exceptions into lorag's, naming the server, the backend and what to check."""

    def __init__(self, engine: RemoteEngine, adapter: str | None = None) -> None:
        self._engine = engine
        self._adapter = adapter

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        errors = self._engine._openai
        if exc is None or not isinstance(exc, errors.OpenAIError):
            return
        engine = self._engine
        where = f"the {engine.backend} server at {engine.base_url}"
        attempts = f"{engine.max_retries + 1} attempt(s)"
        if isinstance(exc, errors.APITimeoutError):
            raise RemoteTimeoutError(f"{where} did not answer within {engine.timeout:g} s ({attempts})") from exc
        if isinstance(exc, errors.APIConnectionError):
            cause = exc.__cause__ or exc
            raise RemoteConnectionError(f"cannot reach {where} ({attempts}): {cause}; is it running?") from exc
        if isinstance(exc, errors.APIStatusError):
            detail = _error_detail(exc)
            if exc.status_code == 404 and self._adapter not in (None, BASE_ADAPTER) and engine.backend != "llama.cpp":
                raise UnknownAdapterError(
                    f"{where} has no model {engine.adapters.target(self._adapter)!r} for adapter "
                    f"{self._adapter!r}: {detail}"
                ) from exc
            raise RemoteStatusError(f"{where} answered {exc.status_code}: {detail}", exc.status_code) from exc
        raise RemoteError(f"{where}: {exc}") from exc


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def remote_options_model() -> Any:
    """A pydantic model with ``RemoteOptions``'s fields (``api_key`` as a ``SecretStr``) and ``remote_engine``,
    which the LangChain and LlamaIndex wrappers subclass beside their local options; pydantic is imported here only."""
    import dataclasses
    import typing

    from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model

    class LoragRemoteOptions(BaseModel):
        model_config = ConfigDict(protected_namespaces=())

        def remote_options(self) -> RemoteOptions:
            values = {f.name: getattr(self, f.name) for f in dataclasses.fields(RemoteOptions)}
            key = values["api_key"]
            values["api_key"] = key.get_secret_value() if isinstance(key, SecretStr) else key
            return RemoteOptions(**values)

        def is_remote(self) -> bool:
            return getattr(self, "base_url", None) is not None

        def remote_engine(self, model: str | None, adapters: Mapping[str, str]) -> RemoteEngine:
            """The shared ``RemoteEngine`` for these settings, with ``adapters`` registered on it."""
            options = self.remote_options()
            assert options.base_url is not None
            return RemoteEngine.shared(
                options.base_url,
                backend=options.backend,
                model=model,
                adapters=adapters,
                api_key=options.api_key,
                timeout=options.timeout,
                max_retries=options.max_retries,
                extra_body=options.extra_body,
            )

    hints = typing.get_type_hints(RemoteOptions)
    hints["api_key"] = SecretStr | None
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(default=f.default, description=f.metadata["doc"]))
        for f in dataclasses.fields(RemoteOptions)
    }
    return create_model("LoragRemoteOptions", __base__=LoragRemoteOptions, **fields)

"""``RemoteEngine``: ``LoragEngine``'s methods over an OpenAI-compatible server, so the wrappers keep their code.

It owns the client and what a request needs from the server (the served model, the context window, the tokenizer)
and sends each request: ``wire`` shapes the request and reads the reply, ``adapters`` finds the adapter on the server,
``errors`` says what failed. What each backend maps, and why the official ``openai`` client, is in the package doc.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from lorag.llm.generation import GenerationResult, SamplingParams, TextDelta
from lorag.llm.remote.adapters import RemoteAdapters
from lorag.llm.remote.errors import ErrorMapper, RemoteError, ToolCallUnsupportedError
from lorag.llm.remote.options import BACKENDS, NO_KEY, Backend
from lorag.llm.remote.wire import (
    Message,
    StreamState,
    api_root,
    generation_result,
    match_model,
    sampling_fields,
    wire_message,
)
from lorag.llm.structured import strict_schema
from lorag.llm.tools import prepare_tools


class RemoteEngine:
    """Serve requests from a vLLM, llama.cpp or other OpenAI-compatible server, adapters chosen per request.

    Args:
        base_url: The server's OpenAI API root (``http://host:8000/v1``; without a path, ``/v1`` is added).
        backend: ``vllm``, ``llama.cpp`` or ``openai-compatible`` (see ``lorag.llm.remote`` for what each maps).
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
        self.base_url = api_root(base_url)
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
            name = match_model(self.model, bases, self.base_url)
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
        if "grammar" in sampling or "params" in sampling or sampling.get("sequence_bias"):
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
        body, extra = sampling_fields(params, self.backend)
        if self.backend == "llama.cpp":
            body["model"] = self.served_model()
            scales = self.adapters.lora_scales(resolved)
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
            body["messages"] = [wire_message(m) for m in messages]
            return "chat", body, read_calls
        body["prompt"] = prompt
        return "completions", body, read_calls

    def _errors(self, adapter: str | None = None) -> ErrorMapper:
        return ErrorMapper(self, adapter)

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
        return self._checked(generation_result(reply, kind, adapter, self.adapter_version(adapter), read_calls), body)

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
        return self._checked(generation_result(reply, kind, adapter, self.adapter_version(adapter), read_calls), body)

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
        state = StreamState(kind)
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
        state = StreamState(kind)
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

    def _checked_stream(self, state: StreamState, body: Mapping[str, Any]) -> TextDelta:
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

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

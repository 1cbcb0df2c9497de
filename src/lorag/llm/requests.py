"""A request in flight: the client's ``RequestHandle`` (a sync or async stream) and the worker's state for it.

The handle is the only object two threads share: the scheduler's worker puts ``TextDelta`` pieces, the end marker or
an error into its queue (the event loop's queue for async use), and the client consumes them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lorag.llm.adapters.virtual_tokens import VirtualTokens
from lorag.llm.generation import GenerationResult, SamplingParams, TextAssembler, TextDelta

#: Put after the last piece: the stream has ended (and the adapter is released).
DONE = object()


class RequestHandle:
    """A submitted request: iterate its ``TextDelta`` pieces (sync or async), or wait for the ``GenerationResult``."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._sync: queue.Queue[Any] = queue.Queue()
        self._async: asyncio.Queue[Any] | None = asyncio.Queue() if loop is not None else None
        self._cancelled = threading.Event()
        self._ended: BaseException | bool = False  # True once the end was consumed, or the error raised
        self.result_value: GenerationResult | None = None

    def _put(self, item: Any) -> None:
        if self._loop is not None and self._async is not None:
            try:
                self._loop.call_soon_threadsafe(self._async.put_nowait, item)
            except RuntimeError:  # the loop closed: the consumer is gone
                self._cancelled.set()
        else:
            self._sync.put(item)

    def cancel(self) -> None:
        """Stop generating for this request (takes effect at the next step)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[TextDelta]:
        if self._async is not None:
            raise RuntimeError("this request was submitted for async use; iterate it with `async for`")
        self._raise_if_ended()
        if self._ended:
            return
        try:
            while (item := self._delta(self._sync.get())) is not None:
                yield item
        finally:
            self.cancel()  # a consumer that stops early frees its batch row

    async def __aiter__(self) -> AsyncIterator[TextDelta]:
        if self._async is None:
            raise RuntimeError("this request was submitted for sync use; iterate it with `for`")
        self._raise_if_ended()
        if self._ended:
            return
        try:
            while (item := self._delta(await self._async.get())) is not None:
                yield item
        finally:
            self.cancel()

    def _delta(self, item: Any) -> TextDelta | None:
        """The piece a queue item carries; None at the end; an error the worker put is raised (and remembered)."""
        if isinstance(item, BaseException):
            self._ended = item
            raise item
        if item is DONE:
            self._ended = True
            return None
        return item  # type: ignore[no-any-return]

    def _raise_if_ended(self) -> None:
        """A stream is consumed once; iterating again (e.g. ``result()`` after streaming) replays only the end."""
        if isinstance(self._ended, BaseException):
            raise self._ended

    def result(self) -> GenerationResult:
        """Consume the stream and return the finished request."""
        for _ in self:
            pass
        assert self.result_value is not None
        return self.result_value

    async def aresult(self) -> GenerationResult:
        async for _ in self:
            pass
        assert self.result_value is not None
        return self.result_value


class _Submits(Protocol):
    def submit(self, prompt: str | None = None, **kwargs: Any) -> Any: ...


class SubmitShortcuts:
    """``generate`` and ``stream`` for an engine whose ``submit`` returns a handle that streams ``TextDelta`` pieces
    and has ``result()`` (``LoragEngine``, ``LlamaCppEngine``)."""

    def generate(
        self: _Submits,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        adapter: str | None = None,
        **sampling: Any,
    ) -> GenerationResult:
        """Generate a completion (blocking); keyword arguments as in ``submit``."""
        result: GenerationResult = self.submit(prompt, messages=messages, adapter=adapter, **sampling).result()
        return result

    def stream(
        self: _Submits,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        adapter: str | None = None,
        **sampling: Any,
    ) -> Iterator[TextDelta]:
        """Stream text pieces as tokens are generated; the last piece has ``finish_reason`` and ``usage``."""
        yield from self.submit(prompt, messages=messages, adapter=adapter, **sampling)


@dataclass(eq=False)
class ActiveRequest:
    prompt_ids: list[int]
    adapter: str
    version: str
    route: str
    """The row group it decodes in (``AdapterRegistry.route``)."""
    params: SamplingParams
    handle: RequestHandle
    assembler: TextAssembler
    virtual: VirtualTokens | None = None
    """A prompt- or prefix-tuning adapter's tokens, placed before the prompt at prefill."""
    generator: Any = None
    processors: Any = None
    """This request's ``LogitsProcessorList`` (penalties, ``min_tokens``), None when it has none."""
    last_token: int = 0
    length: int = 0
    """Tokens in this request's KV cache."""
    kv: list[tuple[Any, Any]] | None = None
    """Per-layer (key, value) of shape (1, Hkv, length, D), only between prefill and joining the batch."""
    completion: int = 0
    finish: str | None = None
    read_tool_calls: bool = False
    error: BaseException | None = None
    """Why this request failed in a decode step (e.g. its grammar broke); its batch neighbours go on."""
    logprobs: list[float] = field(default_factory=list)

"""A batching scheduler: concurrent requests for any adapters decode together, one forward pass per step.

Requests arrive from any thread or event loop (``lorag.llm.requests``). One worker thread owns the model: it prefills
each new request on its own, then runs every active request's next token in ONE forward pass. Rows are laid out in
groups, one per route (a LoRA, IA3 or bottleneck adapter, or the base, where prompt- and prefix-tuning requests decode
once their virtual tokens are in their KV cache), and each group's adapter is applied to its slice of rows
(``lorag.llm.adapters.row_groups``), not through peft's ``adapter_names``. Requests join and leave between steps
(continuous batching), so a long request does not hold back short ones, and no adapter is ever "switched": there is
no global active adapter to race on.

Exactness (``exact=True``). A request's greedy output under concurrency is bit-for-bit the output it gets alone,
by construction:

- prefill always runs alone (batch of one, no padding), as in a solo run;
- in decode steps each row attends over exactly its own keys (``lorag.llm.attention``), and gets its own position ids;
- with ``exact=True`` each weight product of a decode step runs once per row (``lorag.llm.rowwise``): CPU matrix
  kernels round one row differently inside a product over several, so each row gets the one-row kernel a solo step
  uses. ``tests/llm/test_batch_exactness.py`` and ``tests/llm/adapters/test_kinds.py`` check the result on the
  machine they run on. ``exact=False`` (the default) runs one product over all rows: more throughput
  under load, last bits that can depend on the batch, as in other serving engines (vLLM, SGLang: batch invariance
  is their opt-in too).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
import weakref
from contextlib import nullcontext
from typing import Any

from lorag.llm.adapters import AdapterRegistry
from lorag.llm.attention import row_spans
from lorag.llm.generation import (
    GenerationResult,
    SamplingParams,
    TextAssembler,
    TextDelta,
    Usage,
    choose_token,
    logits_processors,
)
from lorag.llm.requests import DONE, ActiveRequest, RequestHandle
from lorag.llm.rowwise import rowwise_products
from lorag.llm.tools import parse_tool_calls

logger = logging.getLogger(__name__)

__all__ = ["BatchScheduler", "RequestHandle"]

_RUNNING: weakref.WeakSet[BatchScheduler] = weakref.WeakSet()


@atexit.register
def _close_running() -> None:
    """Join every worker before the interpreter finalizes. A daemon thread still inside torch at exit is ended by
    ``pthread_exit``, whose unwinding through C++ frames aborts the process ("terminate called without an active
    exception", exit code 134) after a script has done its work."""
    for scheduler in list(_RUNNING):
        scheduler.close()


class BatchScheduler:
    """Runs requests for any mix of adapters in shared forward passes on one worker thread.

    Args:
        registry: Adapter registry over the base; its ``model_lock`` guards each forward pass.
        tokenizer: The base's tokenizer.
        max_batch_size: Most requests decoding together; more wait for a free row.
        exact: Run each weight product once per row, so outputs equal solo runs bit for bit.
        batch_window_s: How long an idle worker waits after the first arrival to gather concurrent requests.
        stop_ids: End-of-sequence token ids.
        max_length: Context window of the model (prompt + generated tokens).
        num_threads: CPU intra-op threads of the worker, which runs every forward pass (None: torch's setting).
            Set in the worker thread, so other threads keep theirs, but torch also makes it the default of threads
            that have not run torch code yet.
    """

    def __init__(
        self,
        registry: AdapterRegistry,
        tokenizer: Any,
        *,
        stop_ids: frozenset[int],
        max_length: int,
        max_batch_size: int = 16,
        exact: bool = False,
        batch_window_s: float = 0.005,
        num_threads: int | None = None,
    ) -> None:
        if type(exact) is not bool:
            raise ValueError(f"exact_batching must be True or False, got {exact!r}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if num_threads is not None and (type(num_threads) is not int or num_threads < 1):
            raise ValueError(f"num_threads must be an integer >= 1 or None, got {num_threads!r}")
        self.registry = registry
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids
        self.max_length = max_length
        self.max_batch_size = max_batch_size
        self.exact = exact
        self.batch_window_s = batch_window_s
        self.num_threads = num_threads
        self._pending: queue.Queue[ActiveRequest] = queue.Queue()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # batch state (worker thread only)
        self._rows: list[ActiveRequest] = []
        self._layout: list[ActiveRequest] = []
        self._starts: list[int] = []
        self._cache: Any = None
        self.steps = 0
        self.max_rows_seen = 0

    # ------------------------------------------------------------------ client side

    def submit(
        self,
        prompt_ids: list[int],
        adapter: str | None,
        params: SamplingParams,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        read_tool_calls: bool = False,
    ) -> RequestHandle:
        """Queue a request. Unknown adapters and invalid inputs raise here, in the caller's thread.

        ``read_tool_calls``: the result's ``tool_reply`` splits the text into content and ``<tool_call>`` blocks.
        """
        if self._closed.is_set():
            raise RuntimeError("the scheduler is closed")
        if not prompt_ids:
            raise ValueError("the prompt has no tokens")
        processors = logits_processors(
            params, len(prompt_ids), self.stop_ids, self.registry.base.model.device, self.tokenizer
        )
        name, version = self.registry.acquire(adapter)
        try:
            route, virtual = self.registry.route(name), self.registry.virtual_tokens(name)
            reserved = virtual.count if virtual is not None else 0
            if len(prompt_ids) + reserved >= self.max_length:
                raise ValueError(
                    f"the prompt has {len(prompt_ids)} tokens"
                    + (f" after {reserved} virtual tokens of {name!r}" if reserved else "")
                    + f"; the model's context is {self.max_length}"
                )
        except BaseException:
            self.registry.release(name)
            raise
        handle = RequestHandle(loop)
        assembler = TextAssembler(self.tokenizer, params.stop)
        active = ActiveRequest(list(prompt_ids), name, version, route, params, handle, assembler, virtual)
        active.processors = processors
        active.read_tool_calls = read_tool_calls
        if not params.greedy:
            import torch

            active.generator = torch.Generator()
            if params.seed is None:
                active.generator.seed()
            else:
                active.generator.manual_seed(params.seed)
        self._ensure_worker()
        self._pending.put(active)
        return handle

    def close(self) -> None:
        """Stop the worker after failing any queued requests."""
        self._closed.set()
        if self._thread is not None:
            self._pending.put(None)  # type: ignore[arg-type]  # wake the worker
            self._thread.join(timeout=30)

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lorag-scheduler", daemon=True)
                self._thread.start()
                _RUNNING.add(self)

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        if self.num_threads is not None:
            import torch

            torch.set_num_threads(self.num_threads)
        while not self._closed.is_set():
            try:
                self._admit(block=not self._rows)
                if self._rows:
                    self._step()
            except Exception as err:  # fail everyone in flight, keep serving new requests
                logger.exception("scheduler step failed")
                for row in self._rows:
                    self._fail(row, err)
                self._rows, self._layout, self._starts, self._cache = [], [], [], None
        for row in self._rows:
            self._fail(row, RuntimeError("the scheduler was closed"))
        self._rows, self._layout, self._starts, self._cache = [], [], [], None
        while True:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._fail(item, RuntimeError("the scheduler was closed"))

    def _admit(self, *, block: bool) -> None:
        joined: list[ActiveRequest] = []
        if block:
            first = self._pending.get()
            if first is None:
                return
            joined.append(first)
            time.sleep(self.batch_window_s)
        while len(self._rows) + len(joined) < self.max_batch_size:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                joined.append(item)
        for active in joined:
            if active.handle.cancelled:
                self._release(active)
                continue
            try:
                self._prefill(active)
            except Exception as err:
                logger.exception("prefill failed")
                self._fail(active, err)
                continue
            if active.finish is None:
                self._rows.append(active)
        if joined:
            self._relayout()

    def _forward(self, inputs: dict[str, Any], cache: Any, routes: list[str], starts: list[int]) -> Any:
        """One forward pass; ``inputs`` holds ``position_ids`` and ``input_ids`` or ``inputs_embeds``."""
        import torch

        registry = self.registry
        with (
            registry.model_lock,
            torch.inference_mode(),
            row_spans(starts),
            registry.routed(routes) as model,
            rowwise_products(model) if self.exact else nullcontext(),
        ):
            out = model(**inputs, cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()

    def _prefill(self, active: ActiveRequest) -> None:
        """The prompt alone (after the adapter's virtual tokens, if it has any), filling the request's KV cache."""
        import torch
        from transformers import DynamicCache

        model = self.registry.base.model
        ids = torch.tensor([active.prompt_ids], device=model.device)
        if active.virtual is None:
            positions = torch.arange(ids.shape[1], device=model.device).unsqueeze(0)
            inputs, cache = {"input_ids": ids, "position_ids": positions}, DynamicCache()
        else:
            with torch.inference_mode():
                inputs, cache = active.virtual.prefill_inputs(model, ids)
        logits = self._forward(inputs, cache, [active.adapter], [0])
        layers: list[Any] = list(cache.layers)
        active.kv = [(layer.keys, layer.values) for layer in layers]
        active.length = int(inputs["position_ids"][0, -1]) + 1
        self._accept(active, logits[0])

    def _relayout(self) -> None:
        """Rebuild the batched KV cache after requests joined or left: rows grouped by route, left-padded to a
        common length."""
        from transformers import DynamicCache

        per_row: list[list[tuple[Any, Any]]] = []
        for row in self._rows:
            if row.kv is not None:
                per_row.append(row.kv)
                row.kv = None
            else:
                slot = self._layout.index(row)
                start = self._starts[slot]
                per_row.append([(k[slot : slot + 1, :, start:], v[slot : slot + 1, :, start:]) for k, v in self._kv()])
        by_row = dict(zip(map(id, self._rows), per_row, strict=True))
        layout = sorted(self._rows, key=lambda r: r.route)
        self._layout = layout
        self.max_rows_seen = max(self.max_rows_seen, len(layout))
        if not self._rows:
            self._cache, self._starts = None, []
            return
        length = max(r.length for r in self._rows)
        self._starts = [length - r.length for r in layout]
        sample = per_row[0]
        layers = []
        for layer_idx, (k0, v0) in enumerate(sample):
            keys = k0.new_zeros(len(layout), k0.shape[1], length, k0.shape[3])
            values = v0.new_zeros(len(layout), v0.shape[1], length, v0.shape[3])
            for slot, entry in enumerate(layout):
                k, v = by_row[id(entry)][layer_idx]
                keys[slot, :, length - entry.length :] = k[0]
                values[slot, :, length - entry.length :] = v[0]
            layers.append((keys, values))
        self._cache = DynamicCache(ddp_cache_data=layers)

    def _kv(self) -> list[tuple[Any, Any]]:
        layers: list[Any] = list(self._cache.layers)
        return [(layer.keys, layer.values) for layer in layers]

    def _step(self) -> None:
        import torch

        device = self.registry.base.model.device
        routes = [r.route for r in self._layout]
        ids = torch.tensor([[r.last_token] for r in self._layout], device=device)
        positions = torch.tensor([[r.length] for r in self._layout], device=device)
        logits = self._forward({"input_ids": ids, "position_ids": positions}, self._cache, routes, self._starts)
        self.steps += 1
        finished = False
        for slot, row in enumerate(self._layout):
            row.length += 1
            if row.handle.cancelled:
                row.finish = "cancelled"
            else:
                try:
                    self._accept(row, logits[slot])
                except Exception as err:
                    row.finish, row.error = "error", err
            finished = finished or row.finish is not None
        if finished:
            done = [r for r in self._rows if r.finish is not None]
            self._rows = [r for r in self._rows if r.finish is None]
            self._relayout()
            for row in done:
                if row.error is not None:
                    self._fail(row, row.error)
                else:
                    self._complete(row)

    def _accept(self, row: ActiveRequest, logits: Any) -> None:
        """Pick the next token from this row's logits and advance its text; sets ``finish`` when done."""
        token = choose_token(
            row.params, logits, row.processors, row.prompt_ids + row.assembler.token_ids, row.generator
        )
        row.logprobs.append(float(logits.log_softmax(-1)[token]))
        row.completion += 1
        row.last_token = token
        if token in self.stop_ids:
            row.finish = "stop"
        else:
            text = row.assembler.push(token)
            if row.assembler.stopped:
                row.finish = "stop"
            elif row.completion >= row.params.max_tokens or row.length + 1 >= self.max_length:
                row.finish = "length"
            if text:
                row.handle._put(TextDelta(text, token))
        if row.finish is not None:
            tail = row.assembler.finish()
            usage = Usage(len(row.prompt_ids), row.completion)
            row.handle.result_value = GenerationResult(
                text=row.assembler.emitted,
                token_ids=list(row.assembler.token_ids),
                finish_reason=row.finish,  # type: ignore[arg-type]
                usage=usage,
                adapter=row.adapter,
                adapter_version=row.version,
                token_logprobs=list(row.logprobs),
                tool_reply=parse_tool_calls(row.assembler.emitted) if row.read_tool_calls else None,
            )
            row.handle._put(TextDelta(tail, None, row.finish, usage))  # type: ignore[arg-type]
            if row.kv is not None:  # finished in prefill: never joins the batch
                row.kv = None
                self._complete(row)

    def _complete(self, row: ActiveRequest) -> None:
        """Free the row's adapter, then tell the client: once it sees the end, the adapter is idle again."""
        self._release(row)
        row.handle._put(DONE)

    def _release(self, row: ActiveRequest) -> None:
        self.registry.release(row.adapter)

    def _fail(self, row: ActiveRequest, err: BaseException) -> None:
        row.handle._put(err)
        self._release(row)

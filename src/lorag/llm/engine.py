"""``LoragEngine``: one quantized base, many adapters (LoRA, IA3, bottleneck, prompt or prefix tuning), chosen per
request, batched across adapters and kinds.

The engine is what the LangChain and LlamaIndex wrappers talk to. It owns the loaded base, the adapter registry and
the batching scheduler; all of its methods are safe to call from many threads and event loops at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

from lorag.llm.adapters import BASE_ADAPTER, AdapterInfo, AdapterRegistry
from lorag.llm.attention import ensure_registered
from lorag.llm.auto_calls import (
    CALIBRATED,
    AutoCallRule,
    auto_call_rule,
    continuation_logprob,
    forced_token_logprobs,
    opening_ids,
    shared_tool_words,
    tool_name_coverage,
)
from lorag.llm.generation import (
    GenerationResult,
    SamplingParams,
    TextDelta,
    check_scorable,
    check_token_scorable,
    encode_prompt,
    stop_token_ids,
)
from lorag.llm.loading import LmHeadDtype, LoadedBase, MemoryFootprint, Quantization, load_base
from lorag.llm.requests import SubmitShortcuts
from lorag.llm.scheduler import BatchScheduler, RequestHandle
from lorag.llm.tools import OPEN, Tool, prepare_tools, supports_tools, tool_grammar

Message = Mapping[str, Any]


class LoragEngine(SubmitShortcuts):
    """Serve one base model with per-request adapters of any kind ``lorag train-adapter`` makes.

    Args:
        model: A lorag short name (``smollm2-135m-instruct``), a local directory or a hub id.
        quantization: ``nf4`` (default), ``fp4``, ``int8`` or ``none``.
        compute_dtype: ``float32`` / ``bfloat16`` / ``float16``; default float32 on CPU, bfloat16 on CUDA.
        double_quant: Double-quantize 4-bit scales.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        adapters: Adapters to register now (lazily loaded): name -> peft adapter directory.
        max_resident_adapters: Bound on adapters in memory; least recently used ones are evicted.
        on_base_mismatch: ``warn`` or ``error`` when an adapter records another base (see ``AdapterRegistry``).
        allow_pickle_adapters: Accept pickle ``adapter_model.bin`` files (refused by default).
        max_batch_size: Most requests decoding in one forward pass.
        exact_batching: Keep concurrent outputs bit-identical to solo runs: each weight product of a decode step runs
            per row (``lorag.llm.rowwise``), which costs nothing alone and throughput under load. Off by default: one
            product over all rows, whose last bits (and now and then a greedy token) can depend on the batch.
        num_threads: CPU threads of the forward passes (None: torch's setting, one per core). On a machine where
            other processes keep cores busy, give the number of free cores (often 1): torch's CPU matmuls wait at
            an OpenMP barrier for every thread, and a thread without a core stalls each of them; SmolLM2-135M
            unquantized then decoded at 0.8 tokens/s with 2 threads against 4.7 with 1 (2 cores, one busy).
        trust_remote_code: Allow modelling code from the model repository.
        lm_head_dtype: None (default: the output layer as loaded), ``bfloat16`` or ``int8`` (CPU only): compute
            the output layer from a lower-precision copy while the input embedding stays exact, for faster CPU
            decoding of small models whose tied full-precision head dominates the bytes read per token (see
            ``lorag.llm.loading.lower_lm_head``). Greedy outputs can change; ``benchmarks/results/decode.md``
            counts how many tokens match and the speed gained. Adapters and exact batching work as without it.
        base: An already loaded base (then the loading arguments are ignored).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "smollm2-135m-instruct",
        *,
        quantization: Quantization = "nf4",
        compute_dtype: str | None = None,
        double_quant: bool = True,
        device: str = "auto",
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        max_resident_adapters: int = 8,
        on_base_mismatch: Literal["warn", "error"] = "warn",
        allow_pickle_adapters: bool = False,
        max_batch_size: int = 16,
        exact_batching: bool = False,
        num_threads: int | None = None,
        trust_remote_code: bool = False,
        lm_head_dtype: LmHeadDtype | None = None,
        base: LoadedBase | None = None,
    ) -> None:
        self.base = base or load_base(
            model,
            quantization=quantization,
            compute_dtype=compute_dtype,
            double_quant=double_quant,
            device=device,
            trust_remote_code=trust_remote_code,
            lm_head_dtype=lm_head_dtype,
        )
        self.base.model.set_attn_implementation(ensure_registered())
        self.tokenizer = self.base.tokenizer
        self.adapters = AdapterRegistry(
            self.base,
            max_resident=max_resident_adapters,
            on_base_mismatch=on_base_mismatch,
            allow_pickle=allow_pickle_adapters,
        )
        for name, path in (adapters or {}).items():
            self.adapters.register(name, path)
        config = self.base.model.config
        self.context_window = int(
            getattr(config, "max_position_embeddings", 0) or getattr(self.tokenizer, "model_max_length", 2048)
        )
        self.scheduler = BatchScheduler(
            self.adapters,
            self.tokenizer,
            stop_ids=stop_token_ids(self.tokenizer, self.base.model),
            max_length=self.context_window,
            max_batch_size=max_batch_size,
            exact=exact_batching,
            num_threads=num_threads,
        )

    # ------------------------------------------------------------------ shared engines

    _shared: ClassVar[dict[tuple[Any, ...], LoragEngine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, model: str | os.PathLike[str] = "smollm2-135m-instruct", **kwargs: Any) -> LoragEngine:
        """One engine per (model, loading settings) in this process, so many wrappers share one base in memory.

        ``adapters`` are registered on the shared engine (same name + same path is fine; another path is an error).
        """
        adapters = kwargs.pop("adapters", None) or {}
        bound = inspect.signature(cls.__init__).bind(None, model, **kwargs)
        bound.apply_defaults()  # the same settings spelled differently share one engine
        settings = {k: v for k, v in bound.arguments.items() if k not in ("self", "model", "adapters")}
        key = (os.fspath(model), tuple(sorted((k, repr(v)) for k, v in settings.items())))
        with cls._shared_lock:
            engine = cls._shared.get(key)
            if engine is None:
                engine = cls(model, **kwargs)
                cls._shared[key] = engine
        for name, path in adapters.items():
            engine.adapters.register(name, path)
        return engine

    # ------------------------------------------------------------------ info

    @property
    def footprint(self) -> MemoryFootprint:
        """Memory held by the base and the resident adapters."""
        from lorag.llm.loading import memory_footprint

        return memory_footprint(self.adapters.model)

    def register_adapter(self, name: str, path: str | os.PathLike[str], **kwargs: Any) -> AdapterInfo:
        """Shortcut for ``engine.adapters.register``."""
        return self.adapters.register(name, path, **kwargs)

    def adapter_version(self, adapter: str | None) -> str:
        """Content version of an adapter (or of the base for None), for cache keys."""
        return self.adapters.version(adapter)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ generation

    def submit(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str = "auto",
        constrain_tools: bool = True,
        auto_call_min_logprob: AutoCallRule | float | str | None = CALIBRATED,
        loop: asyncio.AbstractEventLoop | None = None,
        **sampling: Any,
    ) -> RequestHandle:
        """Queue one request; the handle streams ``TextDelta`` pieces and gives the ``GenerationResult``.

        Args:
            prompt: Plain text to continue (tokenized with the tokenizer's special tokens).
            messages: A chat (``[{"role": ..., "content": ...}]``) rendered with the model's chat template;
                assistant ``tool_calls`` and ``tool`` results in OpenAI's shape (see ``lorag.llm.tools``).
            adapter: Adapter name, or None / ``"__base__"`` for the bare base.
            tools: Functions the model may call (``Tool`` or OpenAI specs); the result's ``tool_reply`` holds the
                calls. Streamed text keeps the ``<tool_call>`` blocks: read them with ``ToolCallStream``.
            tool_choice: ``auto`` (the model decides), ``none`` (tools not offered), ``required`` (exactly one
                call) or a tool's name (exactly one call to it).
            constrain_tools: Grammar-constrain the calls (a forced call always parses and its arguments validate;
                under ``auto`` a call the model starts does). False leaves the model free, for comparison.
            auto_call_min_logprob: Under ``auto`` with constrained tools, on a turn that answers the user (the
                last message is theirs, not a tool result), when to force one call (``lorag.llm.auto_calls``): the
                default is the rule calibrated for this base, which weighs the model's log-probability of opening a
                call after the prompt with the words the message shares with a tool (no rule: plain ``auto``); a
                number forces a call when that log-probability is at least it; an ``AutoCallRule`` is used as
                given; None turns it off.
            loop: The running event loop, for ``async for`` consumption.
            **sampling: ``SamplingParams`` fields: max_tokens, temperature, top_p, top_k, seed, stop,
                repetition_penalty, no_repeat_ngram_size, presence_penalty, frequency_penalty, min_tokens,
                sequence_bias, grammar (or ``params=SamplingParams(...)``); a bad value raises ``ValueError``
                naming it.

        Raises:
            ValueError: Bad sampling values, duplicate tool names, a ``tool_choice`` naming no tool, tools with a
                grammar of the caller's own.
            GrammarError: A grammar or tool schema that cannot be enforced (a ``ValueError`` naming the construct).
        """
        params = sampling.pop("params", None) or SamplingParams(**sampling)
        checked = prepare_tools(tools or (), tool_choice)
        offered = checked if tool_choice != "none" else ()
        rule = auto_call_rule(auto_call_min_logprob, self.base.fingerprint)
        if offered and params.grammar is not None and constrain_tools:
            raise ValueError("give either tools or a grammar: tool calls carry their own grammar")
        ids = encode_prompt(self.tokenizer, prompt, messages, offered)
        adapter = adapter if adapter is not None else BASE_ADAPTER
        fits = len(ids) < self.scheduler.max_length  # a longer prompt is refused below, with no scoring pass
        if offered and constrain_tools and tool_choice == "auto" and rule is not None and fits and _user_turn(messages):
            opening = continuation_logprob(self.scheduler.registry, ids, opening_ids(self.tokenizer, OPEN), adapter)
            said = messages or ()
            if opening is not None and rule.calls(
                opening, shared_tool_words(said, offered), tool_name_coverage(said, offered)
            ):
                tool_choice = "required"
        listed = not supports_tools(self.tokenizer)  # the fallback format's call blocks
        grammar = tool_grammar(offered, tool_choice, listed=listed) if constrain_tools else None
        if grammar is not None:
            params = dataclasses.replace(params, grammar=grammar)
        return self.scheduler.submit(ids, adapter, params, loop=loop, read_tool_calls=bool(offered))

    def continuation_logprobs(
        self, messages: Sequence[Message], replies: Sequence[str], *, adapter: str | None = None
    ) -> list[float] | None:
        """log P(reply | the chat) for each reply, teacher-forced under the adapter (one forward pass each, between
        the scheduler's steps); None for an adapter with virtual tokens (prompt or prefix tuning), whose prompt is
        not the chat's tokens alone.

        Raises:
            ValueError: an empty reply, or a chat and reply longer than the model's window (named).
        """
        ids = encode_prompt(self.tokenizer, None, messages, ())
        adapter = adapter if adapter is not None else BASE_ADAPTER
        scores = []
        for reply in replies:
            reply_ids = list(self.tokenizer(reply, add_special_tokens=False)["input_ids"])
            check_scorable(reply, len(reply_ids), len(ids), self.scheduler.max_length)
            score = continuation_logprob(self.scheduler.registry, ids, reply_ids, adapter)
            if score is None:
                return None
            scores.append(score)
        return scores

    def token_logprobs(
        self, prompt_ids: Sequence[int], continuation_ids: Sequence[int], *, adapter: str | None = None
    ) -> list[float] | None:
        """log P of each token of ``continuation_ids`` after ``prompt_ids`` (raw token ids: no chat template), under
        the adapter (None: the base alone); None for an adapter with virtual tokens. ``lorag.rag.question_gain``
        reads how much a passage makes a question likelier with it.

        Raises:
            ValueError: no continuation, more tokens than the model's window, or an id outside the vocabulary (named).
        """
        vocab = int(self.base.model.config.vocab_size)
        check_token_scorable(prompt_ids, continuation_ids, self.scheduler.max_length, vocab)
        adapter = adapter if adapter is not None else BASE_ADAPTER
        return forced_token_logprobs(self.scheduler.registry, list(prompt_ids), list(continuation_ids), adapter)

    async def agenerate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **sampling: Any,
    ) -> GenerationResult:
        """Async ``generate``: awaits without blocking the event loop."""
        handle = self.submit(prompt, messages=messages, adapter=adapter, loop=asyncio.get_running_loop(), **sampling)
        return await handle.aresult()

    async def astream(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] | None = None,
        adapter: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[TextDelta]:
        """Async ``stream``."""
        handle = self.submit(prompt, messages=messages, adapter=adapter, loop=asyncio.get_running_loop(), **sampling)
        async for delta in handle:
            yield delta

    def close(self) -> None:
        """Stop the scheduler's worker thread."""
        self.scheduler.close()


def _user_turn(messages: Sequence[Message] | None) -> bool:
    """Whether the reply answers a user message: the turns ``auto_calls`` rules were chosen on. After a tool
    result the model's own choice stands, so a forced call cannot keep an agent calling."""
    return messages is not None and len(messages) > 0 and messages[-1].get("role") == "user"

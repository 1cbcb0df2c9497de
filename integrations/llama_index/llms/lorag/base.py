"""``LoragLLM`` for LlamaIndex: a local (4-bit by default) base model with a LoRA adapter chosen per call.

Works as ``Settings.llm`` and inside query engines. Per call, pass ``adapter="name"`` to ``complete`` / ``chat`` /
their streaming and async twins; for components that call the LLM themselves (a ``RetrieverQueryEngine``), give them
``llm.with_adapter("name")``, a copy that shares the same loaded base and scheduler.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from lorag.llm import GenerationResult, LoragEngine

#: Fields a call may override (``complete(..., adapter="legal", min_tokens=8)``); all but adapter are sampling settings.
_OPTIONS = (
    "adapter",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "presence_penalty",
    "frequency_penalty",
    "min_tokens",
)


class LoragLLM(CustomLLM):
    """LlamaIndex LLM over ``lorag.llm.LoragEngine``: one base in memory, per-request LoRA adapters, batched."""

    model: str = Field(default="smollm2-135m-instruct", description="lorag short name, local dir or hub id.")
    quantization: str = Field(default="nf4", description="nf4 (default), fp4, int8 or none.")
    compute_dtype: str | None = Field(default=None, description="float32 / bfloat16 / float16.")
    double_quant: bool = Field(default=True, description="Double-quantize 4-bit scales.")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    adapters: dict[str, str] = Field(default_factory=dict, description="Adapters to register: name -> directory.")
    adapter: str | None = Field(default=None, description="Default adapter (None = the base model).")
    max_tokens: int = Field(default=256, gt=0, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = Field(default=None)
    stop: list[str] | None = Field(default=None, description="Stop strings (output cut right before).")
    repetition_penalty: float = Field(default=1.0, gt=0.0, description="Over prompt and output, as transformers'.")
    no_repeat_ngram_size: int = Field(default=0, ge=0, description="No n-gram of this size twice (0 = off).")
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, description="OpenAI's, over the output.")
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, description="OpenAI's, over the output.")
    min_tokens: int = Field(default=0, ge=0, description="End-of-sequence suppressed until this many tokens.")
    context_window: int | None = Field(default=None, description="Override the model's context window.")

    _engine: LoragEngine | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, engine: LoragEngine | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        return "Lorag_LLM"

    @property
    def engine(self) -> LoragEngine:
        """The engine (loaded on first use, shared with every wrapper that has the same base settings)."""
        with self._lock:
            if self._engine is None:
                self._engine = LoragEngine.shared(
                    self.model,
                    quantization=self.quantization,
                    compute_dtype=self.compute_dtype,
                    double_quant=self.double_quant,
                    device=self.device,
                )
            for name, path in self.adapters.items():
                self._engine.adapters.register(name, path)
            return self._engine

    def with_adapter(self, adapter: str | None) -> LoragLLM:
        """A copy whose calls use ``adapter`` by default, sharing this one's engine."""
        engine = self.engine
        engine.adapters.version(adapter)  # unknown names fail here, not inside a query engine
        return LoragLLM(engine=engine, **{**self.model_dump(exclude={"callback_manager"}), "adapter": adapter})

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window or self.engine.context_window,
            num_output=self.max_tokens,
            is_chat_model=bool(getattr(self.engine.tokenizer, "chat_template", None)),
            model_name=self.model if self.adapter is None else f"{self.model}+{self.adapter}",
        )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - set(_OPTIONS) - {"formatted"}
        if unknown:
            raise TypeError(f"unsupported option(s) {sorted(unknown)}; valid: {list(_OPTIONS)}")
        options = {name: getattr(self, name) for name in _OPTIONS}
        options.update({k: v for k, v in kwargs.items() if k in _OPTIONS})
        options["stop"] = tuple(options["stop"] or ())
        return options

    @staticmethod
    def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        return [{"role": m.role.value, "content": m.content or ""} for m in messages]

    @staticmethod
    def _raw(result: GenerationResult) -> dict[str, Any]:
        return {
            "finish_reason": result.finish_reason,
            "adapter": result.adapter,
            "adapter_version": result.adapter_version,
            "usage": {
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "total_tokens": result.usage.total_tokens,
            },
        }

    # ------------------------------------------------------------------ completion

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        result = self.engine.generate(prompt, **self._options(kwargs))
        return CompletionResponse(text=result.text, raw=self._raw(result))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        deltas = self.engine.stream(prompt, **self._options(kwargs))

        def gen() -> CompletionResponseGen:
            text = ""
            for delta in deltas:
                text += delta.text
                yield CompletionResponse(text=text, delta=delta.text)

        return gen()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        result = await self.engine.agenerate(prompt, **self._options(kwargs))
        return CompletionResponse(text=result.text, raw=self._raw(result))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        options = self._options(kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            async for delta in self.engine.astream(prompt, **options):
                text += delta.text
                yield CompletionResponse(text=text, delta=delta.text)

        return gen()

    # ------------------------------------------------------------------ chat (the model's own chat template)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = self.engine.generate(messages=self._messages(messages), **self._options(kwargs))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=result.text), raw=self._raw(result))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        deltas = self.engine.stream(messages=self._messages(messages), **self._options(kwargs))

        def gen() -> ChatResponseGen:
            text = ""
            for delta in deltas:
                text += delta.text
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta.text)

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = await self.engine.agenerate(messages=self._messages(messages), **self._options(kwargs))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=result.text), raw=self._raw(result))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        options = self._options(kwargs)
        chat = self._messages(messages)

        async def gen() -> ChatResponseAsyncGen:
            text = ""
            async for delta in self.engine.astream(messages=chat, **options):
                text += delta.text
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta.text)

        return gen()

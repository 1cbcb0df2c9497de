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
from lorag.llm.options import options_model

_Options = options_model()


class LoragLLM(_Options, CustomLLM):  # type: ignore[misc,valid-type]
    """LlamaIndex LLM over ``lorag.llm.LoragEngine``: one base in memory, per-request LoRA adapters, batched.

    Takes the options the LangChain ``LoragLLM`` / ``ChatLorag`` take (``lorag.llm.options``: the base and how it
    is loaded, ``max_resident_adapters``, ``trust_remote_code``, the adapters and the sampling defaults), plus
    ``context_window``.
    """

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
                self._engine = self.engine_options().shared_engine()
            else:
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
        kwargs.pop("formatted", None)  # LlamaIndex's own flag: the prompt is used as given either way
        return self.call_options(kwargs)

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

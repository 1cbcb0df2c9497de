"""``ChatLorag``: a LangChain chat model over one (quantized) base with a LoRA adapter chosen per call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_lorag._common import LoragParams
from lorag.llm import GenerationResult, TextDelta, Usage


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for block in message.content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"ChatLorag takes text only; got a {kind!r} content block")
    return "".join(parts)


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> ``[{"role", "content"}]`` for the model's chat template."""
    chat = []
    for message in messages:
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, ToolMessage):
            role = "tool"
        elif isinstance(message, ChatMessage):
            role = message.role
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
        chat.append({"role": role, "content": _text(message)})
    return chat


def _usage(usage: Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


class ChatLorag(LoragParams, BaseChatModel):
    """Chat with a local (4-bit by default) base model and per-call LoRA adapters, batched across adapters.

    Example:
        .. code-block:: python

            from langchain_lorag import ChatLorag

            chat = ChatLorag(model="smollm2-135m-instruct", quantization="nf4", adapters={"legal": "adapters/legal"})
            chat.invoke("Summarise the clause.", adapter="legal")   # per call
            legal = chat.bind(adapter="legal")                      # per runnable
            base_answer = chat.invoke("Hello")                      # the base model

    The adapter (and its content version) is part of ``_identifying_params`` and of the LangChain cache key.
    Tool calling and structured output are not offered: the default 135M model cannot do them reliably.
    """

    streaming: bool = False
    """Stream internally in ``invoke`` (callbacks get tokens)."""

    @property
    def _llm_type(self) -> str:
        return "lorag-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self.lorag_identity()

    def _get_invocation_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.versioned(super()._get_invocation_params(stop=stop, **kwargs), kwargs)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="lorag",
            ls_model_name=self.model,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    def _message(self, result: GenerationResult) -> AIMessage:
        return AIMessage(
            content=result.text,
            usage_metadata=_usage(result.usage),
            response_metadata=self._metadata(result.finish_reason, result.adapter),
        )

    def _metadata(self, finish_reason: str | None, adapter: str) -> dict[str, Any]:
        return {"model_name": self.model, "finish_reason": finish_reason, "adapter": adapter}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self.request_options(stop, kwargs)
        result = self.get_engine().generate(messages=to_chat(messages), **options)
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self.request_options(stop, kwargs)
        result = await self.get_engine().agenerate(messages=to_chat(messages), **options)
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    def _chunk(self, delta: TextDelta, adapter: str) -> ChatGenerationChunk:
        if delta.finish_reason is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=delta.text))
        assert delta.usage is not None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=delta.text,
                usage_metadata=_usage(delta.usage),
                response_metadata=self._metadata(delta.finish_reason, adapter),
                chunk_position="last",
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self.request_options(stop, kwargs)
        adapter = options["adapter"] or "__base__"
        for delta in self.get_engine().stream(messages=to_chat(messages), **options):
            chunk = self._chunk(delta, adapter)
            if run_manager and delta.text:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        options = self.request_options(stop, kwargs)
        adapter = options["adapter"] or "__base__"
        async for delta in self.get_engine().astream(messages=to_chat(messages), **options):
            chunk = self._chunk(delta, adapter)
            if run_manager and delta.text:
                await run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

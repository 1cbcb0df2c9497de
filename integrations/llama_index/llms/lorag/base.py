"""``LoragLLM`` for LlamaIndex: a local (4-bit by default) base model with a LoRA adapter chosen per call.

Works as ``Settings.llm`` and inside query engines. Per call, pass ``adapter="name"`` to ``complete`` / ``chat`` /
their streaming and async twins; for components that call the LLM themselves (a ``RetrieverQueryEngine``), give them
``llm.with_adapter("name")``, a copy that shares the same loaded base and scheduler.

It is a ``FunctionCallingLLM``: ``chat_with_tools``, ``predict_and_call``, ``structured_predict`` and agents such as
``FunctionAgent`` call tools through ``lorag.llm.tools`` (the model's chat template, or its Hermes-style fallback),
and a forced call (``tool_required=True``, as structured prediction asks) is grammar-constrained, so its arguments
always parse and validate against the tool's schema.

With ``base_url`` set it talks to a vLLM, llama.cpp or other OpenAI-compatible server instead
(``lorag.llm.remote.RemoteEngine``, the local engine's methods over the server): the same calls, ``adapter=`` and
``with_adapter`` included; tools go to the server as OpenAI tools.
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
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools import BaseTool

from llama_index.llms.lorag.tools import StreamedReply, assistant_message, to_chat, tool_selections, tool_specs
from lorag.llm import GenerationResult, LoragEngine
from lorag.llm.options import options_model
from lorag.llm.remote import RemoteEngine, remote_options_model

_Options = options_model()
_Remote = remote_options_model()


class LoragLLM(_Options, _Remote, FunctionCallingLLM):  # type: ignore[misc,valid-type]
    """LlamaIndex LLM over ``lorag.llm.LoragEngine``: one base in memory, per-request LoRA adapters, batched.

    Takes the options the LangChain ``LoragLLM`` / ``ChatLorag`` take (``lorag.llm.options``: the base and how it
    is loaded, ``max_resident_adapters``, ``trust_remote_code``, the adapters and the sampling defaults), plus
    ``context_window``, and the server options (``base_url``, ``api_key``, ``backend``, ``timeout``, ``max_retries``:
    ``lorag.llm.remote.RemoteOptions``).
    """

    context_window: int | None = Field(default=None, description="Override the model's context window.")

    _engine: LoragEngine | RemoteEngine | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, engine: LoragEngine | RemoteEngine | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        return "Lorag_LLM"

    @property
    def engine(self) -> LoragEngine | RemoteEngine:
        """The engine (loaded on first use, shared with every wrapper that has the same base settings), or with
        ``base_url`` the shared ``RemoteEngine`` for that server."""
        with self._lock:
            if self._engine is None and self.is_remote():
                self._engine = self.remote_engine(self.model, self.adapters)
            elif self._engine is None:
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
            is_chat_model=self.is_remote() or bool(getattr(self.engine.tokenizer, "chat_template", None)),
            is_function_calling_model=True,
            model_name=self.model if self.adapter is None else f"{self.model}+{self.adapter}",
        )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.pop("formatted", None)  # LlamaIndex's own flag: the prompt is used as given either way
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", "auto")
        auto_call = {k: kwargs.pop(k) for k in ("auto_call_min_logprob",) if k in kwargs}  # lorag.llm.auto_calls
        options = self.call_options(kwargs)
        if tools:
            options.update(tools=tools, tool_choice=tool_choice, **({} if self.is_remote() else auto_call))
        return options

    @staticmethod
    def _reply(result: GenerationResult) -> ChatMessage:
        if result.tool_reply is not None:
            return assistant_message(result.tool_reply)
        return ChatMessage(role=MessageRole.ASSISTANT, content=result.text)

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
        result = self.engine.generate(messages=to_chat(messages), **self._options(kwargs))
        return ChatResponse(message=self._reply(result), raw=self._raw(result))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        options = self._options(kwargs)
        deltas = self.engine.stream(messages=to_chat(messages), **options)
        reply = StreamedReply(tools=bool(options.get("tools")))

        def gen() -> ChatResponseGen:
            for delta in deltas:
                yield reply.push(delta.text)
            last = reply.finish()
            if last is not None:
                yield last

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = await self.engine.agenerate(messages=to_chat(messages), **self._options(kwargs))
        return ChatResponse(message=self._reply(result), raw=self._raw(result))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        options = self._options(kwargs)
        chat = to_chat(messages)
        reply = StreamedReply(tools=bool(options.get("tools")))

        async def gen() -> ChatResponseAsyncGen:
            async for delta in self.engine.astream(messages=chat, **options):
                yield reply.push(delta.text)
            last = reply.finish()
            if last is not None:
                yield last

        return gen()

    # ------------------------------------------------------------------ tools (FunctionCallingLLM's hooks)

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """``chat`` arguments offering ``tools``; ``tool_required`` forces a call, ``tool_choice`` may name one."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        choice = tool_choice or ("required" if tool_required else "auto")
        return {"messages": messages, "tools": tool_specs(tools), "tool_choice": choice, **kwargs}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first call unless parallel calls are allowed (LlamaIndex's contract)."""
        calls = response.message.additional_kwargs.get("tool_calls", [])
        if not allow_parallel_tool_calls and len(calls) > 1:
            response.message.additional_kwargs["tool_calls"] = calls[:1]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        selections = tool_selections(response)
        if not selections and error_on_no_tool_call:
            raise ValueError(f"expected at least one tool call, got a reply without one: {response.message.content!r}")
        return selections

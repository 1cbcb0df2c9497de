"""``ChatLorag``: a LangChain chat model over one (quantized) base with a LoRA adapter chosen per call.

Tool calling and structured output are the core's (``lorag.llm.tools``, ``lorag.llm.structured``): this module maps
LangChain's tools and schemas onto them (messages: ``langchain_lorag.messages``). Calls and structured replies are
grammar-constrained, so a forced call always parses and its arguments validate, even from a 135M model.

With ``base_url`` set, the same class talks to a vLLM, llama.cpp or other OpenAI-compatible server instead
(``lorag.llm.remote.RemoteEngine``, which has the local engine's methods): every method below runs unchanged, and
tools and schemas go to the server as OpenAI tools and ``response_format``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_lorag._common import LoragParams
from langchain_lorag.messages import reply_fields, to_chat, tool_choice_name, usage_metadata
from lorag.llm import GenerationResult, Grammar, LoragEngine, TextDelta, ToolCallStream, ToolReply
from lorag.llm.generation import encode_prompt
from lorag.llm.remote import RemoteEngine, remote_options_model
from lorag.llm.tools import prepare_tools

_Remote = remote_options_model()

#: Call options ChatLorag takes besides the common ones: set by ``bind_tools`` and ``with_structured_output``.
TOOL_OPTIONS = ("tools", "tool_choice", "auto_call_min_logprob", "json_schema", "json_mode")


class ChatLorag(LoragParams, _Remote, BaseChatModel):  # type: ignore[misc,valid-type]
    """Chat with a local (4-bit by default) base model and per-call LoRA adapters, batched across adapters, or
    with a server that serves the base and the adapters (``base_url``).

    Example:
        .. code-block:: python

            from langchain_lorag import ChatLorag

            chat = ChatLorag(model="smollm2-135m-instruct", quantization="nf4", adapters={"legal": "adapters/legal"})
            chat.invoke("Summarise the clause.", adapter="legal")   # per call
            legal = chat.bind(adapter="legal")                      # per runnable
            base_answer = chat.invoke("Hello")                      # the base model

            chat.bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Paris?").tool_calls
            chat.with_structured_output(Person).invoke("Ada Lovelace, 36")   # a validated Person

            # the same chains against a server: vLLM (adapter = the served LoRA name) or llama-server (the GGUF)
            chat = ChatLorag(base_url="http://gpu-host:8000/v1", backend="vllm", model="HuggingFaceTB/SmolLM2-135M")
            chat = ChatLorag(base_url="http://127.0.0.1:8080", backend="llama.cpp", adapters={"legal": "legal.gguf"})

    The adapter (and its content version) is part of ``_identifying_params`` and of the LangChain cache key. Tool
    calls and structured output are grammar-constrained (``lorag.llm.structured``): they always parse and validate,
    though a small model may still pick poor values.
    """

    streaming: bool = False
    """Stream internally in ``invoke`` (callbacks get tokens)."""

    @property
    def _llm_type(self) -> str:
        return "lorag-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        identity = self.lorag_identity()
        if self.is_remote():
            identity.update(base_url=self.base_url, backend=self.backend, extra_body=self.extra_body)
        return identity

    def get_engine(self) -> Any:  # LoragEngine, or RemoteEngine with the same methods when base_url is set
        """The local engine (loaded on first use, shared), or with ``base_url`` the shared ``RemoteEngine``."""
        if not self.is_remote():
            return super().get_engine()
        return self.remote_engine(self.model, self.adapters)

    def get_token_ids(self, text: str) -> list[int]:
        engine = self.get_engine()
        if isinstance(engine, RemoteEngine):
            return engine.tokenize(text)
        return super().get_token_ids(text)

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

    # ------------------------------------------------------------------ tools and structured output

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools (LangChain tools, pydantic models, TypedDicts, functions or OpenAI tool dicts).

        Args:
            tools: The tools; their calls come back as ``AIMessage.tool_calls`` (streamed as ``tool_call_chunks``).
            tool_choice: None / ``"auto"`` (the model decides), ``"any"`` / ``"required"`` / True (exactly one call),
                a tool's name (exactly one call to it), ``"none"`` / False (tools not offered). Under ``"auto"`` a
                local model whose base has a calibrated rule calls a tool when its probability of opening a call and
                the words the message shares with a tool and its name say so (``lorag.llm.auto_calls``); bind
                ``auto_call_min_logprob`` (a log-probability, an ``AutoCallRule``, or None for the model's own
                choice) to change that.
            **kwargs: Further call options to bind.

        Raises:
            ValueError: Two different tools share a name, or ``tool_choice`` names no bound tool.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        choice = tool_choice_name(tool_choice)
        prepare_tools(formatted, choice)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable whose output is an instance of ``schema`` (pydantic) or a dict valid under it.

        Args:
            schema: A pydantic model, a TypedDict, a JSON schema or an OpenAI function spec.
            method: ``json_schema``: the reply is constrained to the schema; ``function_calling``: a forced call to
                a tool named after the schema, its arguments constrained; ``json_mode``: a JSON object guided by the
                schema as given, not closed: its properties and types are enforced, keys it does not list are
                allowed (a 135M model left with "any object" nests the keys the prompt asks for).
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}`` instead of raising.
            strict: Accepted for compatibility: the ``json_schema`` and ``function_calling`` methods always enforce
                the schema closed, and ``json_mode`` as given.
        """
        if kwargs:
            raise TypeError(f"unsupported argument(s) {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[Any, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=trace)
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            target = convert_to_json_schema(schema)
            llm = self.bind(json_schema=target, json_mode=method == "json_mode", ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise ValueError(f"method must be 'json_schema', 'function_calling' or 'json_mode', got {method!r}")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    # ------------------------------------------------------------------ token counts

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens of the prompt the model would read: the chat template, the tools (if given) and the opened
        assistant turn included."""
        engine = self.get_engine()
        if not isinstance(engine, LoragEngine):  # a server's chat template is its own: count the messages' text
            return BaseChatModel.get_num_tokens_from_messages(self, messages, tools)
        offered = prepare_tools([convert_to_openai_tool(tool) for tool in tools or ()])
        return len(encode_prompt(engine.tokenizer, messages=to_chat(messages), tools=offered))

    # ------------------------------------------------------------------ generation

    def _call(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Engine keyword arguments for one call: sampling options, tools and the structured-output grammar."""
        extra = {name: kwargs.pop(name) for name in TOOL_OPTIONS if name in kwargs}
        options = self.request_options(stop, kwargs)
        if "json_schema" in extra and self.is_remote():  # the server constrains it (response_format)
            options.update(json_schema=extra["json_schema"], json_mode=bool(extra.get("json_mode")))
        elif "json_schema" in extra:
            options["grammar"] = Grammar.json_schema(extra["json_schema"], strict=not extra.get("json_mode"))
        if extra.get("tools"):
            options["tools"] = extra["tools"]
            options["tool_choice"] = extra.get("tool_choice", "auto")
            if "auto_call_min_logprob" in extra and not self.is_remote():
                options["auto_call_min_logprob"] = extra["auto_call_min_logprob"]
        return options

    def _message(self, result: GenerationResult) -> AIMessage:
        return AIMessage(
            **reply_fields(result.tool_reply, result.text),
            usage_metadata=usage_metadata(result.usage),
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
        result = self.get_engine().generate(messages=to_chat(messages), **self._call(stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = await self.get_engine().agenerate(messages=to_chat(messages), **self._call(stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self._call(stop, kwargs)
        chunks = _Chunker(self, options)
        for delta in self.get_engine().stream(messages=to_chat(messages), **options):
            chunk = chunks.convert(delta)
            if run_manager and (delta.text or chunk.message.tool_call_chunks):  # type: ignore[attr-defined]
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        options = self._call(stop, kwargs)
        chunks = _Chunker(self, options)
        async for delta in self.get_engine().astream(messages=to_chat(messages), **options):
            chunk = chunks.convert(delta)
            if run_manager and (delta.text or chunk.message.tool_call_chunks):  # type: ignore[attr-defined]
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk


class _Chunker:
    """Turns one stream's text deltas into message chunks: with tools offered, text inside ``<tool_call>`` blocks is
    held back and each finished block becomes a ``tool_call_chunk`` (one per call, its own index)."""

    def __init__(self, chat: ChatLorag, options: dict[str, Any]) -> None:
        self._chat = chat
        self._adapter = options["adapter"] or "__base__"
        offered = options.get("tools") and options.get("tool_choice") != "none"
        self._reader = ToolCallStream() if offered else None
        self._calls = 0

    def convert(self, delta: TextDelta) -> ChatGenerationChunk:
        if self._reader is None:
            fields: dict[str, Any] = {"content": delta.text}
        else:
            part = self._reader.push(delta.text)
            if delta.finish_reason is not None:
                rest = self._reader.finish()
                part = ToolReply(
                    part.content + rest.content,
                    part.tool_calls + rest.tool_calls,
                    part.invalid_tool_calls + rest.invalid_tool_calls,
                )
            fields = {"content": part.content, "tool_call_chunks": self._call_chunks(part)}
        if delta.finish_reason is None:
            return ChatGenerationChunk(message=AIMessageChunk(**fields))
        assert delta.usage is not None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                **fields,
                usage_metadata=usage_metadata(delta.usage),
                response_metadata=self._chat._metadata(delta.finish_reason, self._adapter),
                chunk_position="last",
            )
        )

    def _call_chunks(self, part: ToolReply) -> list[Any]:
        chunks = []
        for call in part.tool_calls:
            chunks.append(
                tool_call_chunk(name=call.name, args=json.dumps(call.arguments), id=call.id, index=self._calls)
            )
            self._calls += 1
        for bad in part.invalid_tool_calls:  # no name and unparsable args: LangChain files it as an invalid call
            chunks.append(tool_call_chunk(name=None, args=bad.text, id=None, index=self._calls))
            self._calls += 1
        return chunks

"""LlamaIndex's tool-calling shapes to lorag's (``lorag.llm.tools``) and back.

A call is kept on the assistant ``ChatMessage`` as ``additional_kwargs["tool_calls"]`` in OpenAI's shape, as
LlamaIndex's OpenAI integration keeps it, so a chat history that went through an agent renders back through the
model's chat template with its calls and their results (``tool`` messages with ``tool_call_id``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools import BaseTool

from lorag.llm.tools import InvalidToolCall, ToolCall, ToolCallStream, ToolReply


def to_chat(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as OpenAI-shaped dicts for ``LoragEngine`` (calls and results included)."""
    chat = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role.value, "content": message.content or ""}
        extra = message.additional_kwargs
        if message.role == MessageRole.ASSISTANT and extra.get("tool_calls"):
            entry["tool_calls"] = list(extra["tool_calls"])
        if message.role == MessageRole.TOOL:
            entry["tool_call_id"] = extra.get("tool_call_id")
            if extra.get("name"):
                entry["name"] = extra["name"]
        chat.append(entry)
    return chat


def tool_specs(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    return [tool.metadata.to_openai_tool() for tool in tools]


def assistant_message(reply: ToolReply) -> ChatMessage:
    """The reply's text, its calls under ``additional_kwargs["tool_calls"]``. A block that is no call (bad JSON, cut
    off) stays in the text: LlamaIndex has no place for invalid calls, and dropping it would hide what the model
    said."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
        for c in reply.tool_calls
    ]
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content="".join([reply.content, *(bad.text for bad in reply.invalid_tool_calls)]),
        additional_kwargs={"tool_calls": calls} if calls else {},
    )


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    return [
        ToolSelection(
            tool_id=call["id"],
            tool_name=call["function"]["name"],
            tool_kwargs=json.loads(call["function"]["arguments"]),
        )
        for call in response.message.additional_kwargs.get("tool_calls", [])
    ]


class StreamedReply:
    """A streamed reply as cumulative ``ChatResponse``s; with tools offered, ``<tool_call>`` blocks become calls on
    the message as each block closes, and never show in its text."""

    def __init__(self, tools: bool) -> None:
        self._reader = ToolCallStream() if tools else None
        self._content = ""
        self._calls: list[ToolCall] = []
        self._invalid: list[InvalidToolCall] = []

    def push(self, text: str) -> ChatResponse:
        return self._add(self._reader.push(text) if self._reader else ToolReply(text, [], []))

    def finish(self) -> ChatResponse | None:
        """The last response, when the end of the reply released held-back text or a call (tools only)."""
        return self._add(self._reader.finish()) if self._reader else None

    def _add(self, part: ToolReply) -> ChatResponse:
        self._content += part.content
        self._calls += part.tool_calls
        self._invalid += part.invalid_tool_calls
        message = assistant_message(ToolReply(self._content, self._calls, self._invalid))
        return ChatResponse(message=message, delta=part.content)

"""LangChain messages, tool choices and replies to and from the core's shapes: OpenAI-shaped chat messages for the
chat template, the core's ``tool_choice`` values, and ``AIMessage`` fields from a finished reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call

from lorag.llm import ToolReply, Usage

#: Content blocks of an AI message that its ``tool_calls`` already carry (Anthropic's ``tool_use`` and the like).
_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call"})


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for block in message.content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(message, AIMessage) and isinstance(block, dict) and block.get("type") in _CALL_BLOCKS:
            continue
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"ChatLorag takes text only; got a {kind!r} content block")
    return "".join(parts)


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> OpenAI-shaped chat messages for the model's chat template, tool calls and results
    (with their ``tool_call_id``) included."""
    chat: list[dict[str, Any]] = []
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
        entry: dict[str, Any] = {"role": role, "content": _text(message)}
        if isinstance(message, AIMessage) and message.tool_calls:
            entry["tool_calls"] = [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["args"]}}
                for call in message.tool_calls
            ]
        if isinstance(message, ToolMessage):
            entry["tool_call_id"] = message.tool_call_id
            if message.name:
                entry["name"] = message.name
        chat.append(entry)
    return chat


def tool_choice_name(choice: str | bool | dict[str, Any] | None) -> str:
    """LangChain's spellings of a tool choice -> the core's (``auto``, ``none``, ``required`` or a tool's name)."""
    if choice is None or choice == "auto":
        return "auto"
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice is False or choice == "none":
        return "none"
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"a tool_choice dict must name a function, got {choice!r}")
        return name
    if isinstance(choice, str):
        return choice
    raise ValueError(f"tool_choice must be a tool's name, 'auto', 'any', 'required', 'none' or a bool; got {choice!r}")


def reply_fields(reply: ToolReply | None, text: str) -> dict[str, Any]:
    """``AIMessage`` fields for a finished reply: its text and its (invalid) tool calls."""
    if reply is None:
        return {"content": text}
    return {
        "content": reply.content,
        "tool_calls": [tool_call(name=c.name, args=c.arguments, id=c.id) for c in reply.tool_calls],
        "invalid_tool_calls": [invalid_tool_call(args=c.text, error=c.error) for c in reply.invalid_tool_calls],
    }


def usage_metadata(usage: Usage) -> UsageMetadata:
    return UsageMetadata(  # type: ignore[typeddict-item]  # the token details are optional at run time
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )

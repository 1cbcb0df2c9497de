"""Tool calling: tools offered through the chat template, calls read back from the reply, and the grammar that
makes a forced or chosen call valid JSON for its tool's parameters.

Calls are ``<tool_call>`` blocks. A chat template that uses a ``tools`` variable (Qwen2.5/Qwen3, Hermes, SmolLM3)
renders the tools, the assistant's calls and the tool results itself (``apply_chat_template(..., tools=...)``,
messages in OpenAI's shape), and its calls are Hermes blocks, one object each::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

A template without one (SmolLM2-135M-Instruct's plain ChatML) gets the fallback format, which is the one the SmolLM2
family was taught to call functions in (Ollama's SmolLM2 template writes it out): a list of calls in one block,

    <tool_call>[
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    ]</tool_call>

- the tools go at the end of the first system message (one is added if there is none): ``FALLBACK_TOOLS_PROMPT``
  with the OpenAI function specs as a JSON list between ``<tools>`` and ``</tools>``;
- an assistant message's calls are appended to its content as one such block;
- tool results become one user message of ``<tool_response>`` blocks, each ``{"id", "name", "content"}`` in JSON
  (``id`` is the ``tool_call_id``; ``content`` is parsed JSON where the result is JSON).

Replies are read in either form. A model whose native call format is another (Llama 3.1's bare JSON, Mistral's
``[TOOL_CALLS]``) gets ``<tool_call>`` blocks when a call is forced, and its free replies are read only where they use
one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorag.llm.structured import JSON_LAYOUT, Grammar, bounded_schema, map_subschemas, strict_schema

OPEN, CLOSE = "<tool_call>", "</tool_call>"
FALLBACK_TOOLS_PROMPT = (
    "You can call functions to answer. Given the question and the functions below, call the ones it needs with the "
    "right arguments, written exactly as the user wrote them (the same language and script). If no function fits, or "
    "the question lacks an argument a function requires, say so.\n"
    "You have access to the following tools:\n<tools>{tools}</tools>\n"
    "To call functions, reply with the list of calls inside <tool_call></tool_call>, in exactly this form:\n"
    '<tool_call>[\n{{"name": "function_name", "arguments": {{"argument1": "value1", "argument2": "value2"}}}}\n'
    "]</tool_call>"
)
#: ``tool_choice`` values besides a tool's name: offer tools, the model decides; do not offer them; force one call.
CHOICES = ("auto", "none", "required")
_NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it is for, and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(_NO_PARAMETERS))

    @classmethod
    def from_spec(cls, spec: Tool | Mapping[str, Any]) -> Tool:
        """A ``Tool``, an OpenAI tool (``{"type": "function", "function": {...}}``) or a bare function spec."""
        if isinstance(spec, Tool):
            return spec
        if not isinstance(spec, Mapping):
            raise TypeError(f"a tool must be a Tool or an OpenAI function spec (a dict), got {type(spec).__name__}")
        function = spec.get("function", spec) if spec.get("type", "function") == "function" else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ValueError(f"a tool spec needs a function with a non-empty name, got {dict(spec)!r}")
        parameters = function.get("parameters") or dict(_NO_PARAMETERS)
        return cls(function["name"], function.get("description") or "", parameters)

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: ``arguments`` is the parsed JSON object."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id)


@dataclass(frozen=True)
class InvalidToolCall:
    """A ``<tool_call>`` block that is not a call (bad JSON, no name, cut off): its text and why."""

    text: str
    error: str


@dataclass(frozen=True)
class ToolReply:
    """A reply split into its text (the blocks taken out) and its calls."""

    content: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]


def prepare_tools(tools: Sequence[Tool | Mapping[str, Any]], tool_choice: str = "auto") -> tuple[Tool, ...]:
    """Tools as ``Tool``s, checked together with the choice. The same tool given twice (say as a pydantic class and
    as its JSON schema: the same parameters up to titles and descriptions) is kept once, as first given.

    Raises:
        ValueError: Two different tools share a name; ``tool_choice`` is neither ``auto``/``none``/``required``
            nor a tool's name; a call is forced but no tool is given.
    """
    parsed: dict[str, Tool] = {}
    for tool in map(Tool.from_spec, tools):
        seen = parsed.setdefault(tool.name, tool)
        if _unannotated(seen.parameters) != _unannotated(tool.parameters):
            raise ValueError(f"two different tools are named {tool.name!r}; tool names must be unique")
    names = list(parsed)
    if tool_choice not in CHOICES and tool_choice not in names:
        raise ValueError(f"tool_choice {tool_choice!r} names no tool; give one of {names} or one of {list(CHOICES)}")
    if tool_choice == "required" and not parsed:
        raise ValueError("tool_choice='required' needs at least one tool")
    return tuple(parsed.values())


def _unannotated(schema: Any) -> Any:
    """A schema without the keywords that do not change what validates (title, description, examples, $comment)."""
    if not isinstance(schema, Mapping):
        return schema
    out = map_subschemas(schema, _unannotated)
    return {k: v for k, v in out.items() if k not in ("title", "description", "examples", "$comment")}


def tool_grammar(tools: Sequence[Tool], tool_choice: str = "auto", *, listed: bool = False) -> Grammar | None:
    """The constraint for a turn: ``auto`` lets the model write freely, but a ``<tool_call>`` block it starts must
    hold valid calls; ``required`` forces exactly one call to any tool, a tool's name one call to it; ``none`` is
    free. ``listed``: the fallback format's block (a JSON list of calls), else a Hermes block (one call).

    Arguments are bounded (``bounded_schema``: strings and arrays without a ``maxLength`` / ``maxItems`` get one) so
    that, with the loop breaker every grammar has, a call ends however the model writes its values."""
    if tool_choice == "none" or not tools:
        return None
    chosen = [t for t in tools if t.name == tool_choice] if tool_choice not in CHOICES else list(tools)
    rules = []
    for i, tool in enumerate(chosen):
        head = json.dumps(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        arguments = {**bounded_schema(strict_schema(dict(tool.parameters))), "x-guidance": JSON_LAYOUT}
        rules.append(f'call_{i}: {head} args_{i} "}}"\nargs_{i}: %json {json.dumps(arguments)}')
    one = "(" + " | ".join(f"call_{i}" for i in range(len(chosen))) + ")"
    if not listed:
        block = f'"\\n" {one} "\\n{CLOSE}"'
    elif tool_choice == "auto":  # any number of calls, as the format allows (SmolLM2 writes [] for "none needed")
        block = f'"[" ("\\n" {one} (",\\n" {one})* "\\n")? "]{CLOSE}"'
    else:
        block = f'"[\\n" {one} "\\n]{CLOSE}"'
    if tool_choice == "auto":  # free text, and a call wherever the model writes the opening tag
        start = f"%llguidance {{}}\nstart: call* TEXT\ncall: trigger {block}\n"
        start += f"trigger[lazy]: TEXT {json.dumps(OPEN)}\nTEXT: /(.|\\n)*/\n"
    else:
        start = f"start: {json.dumps(OPEN)} {block}\n"
    return Grammar.lark(start + "\n".join(rules) + "\n", json_start=OPEN)


def supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders tools itself (it mentions a ``tools`` variable)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    return re.search(r"\btools\b", tokenizer.get_chat_template(tools=[{}])) is not None


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool] = ()) -> str:
    """The prompt text of a chat, tools and tool traffic included, ready for the assistant's turn.

    Messages are OpenAI-shaped: an assistant message may carry ``tool_calls`` (``{"id", "type": "function",
    "function": {"name", "arguments"}}``), a ``{"role": "tool", "tool_call_id", "name", "content"}`` message carries
    a result.
    """
    if supports_tools(tokenizer):
        specs = [tool.to_openai() for tool in tools] or None
        chat = [_native(message) for message in messages]
        return str(tokenizer.apply_chat_template(chat, tools=specs, add_generation_prompt=True, tokenize=False))
    chat = _fallback(messages, tools)
    return str(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))


def _call_parts(call: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    function = call.get("function", call)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    return function["name"], dict(arguments), call.get("id")


def _native(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message for a template with a tools section: call arguments as objects (what such templates expect)."""
    out = dict(message)
    if out.get("tool_calls"):
        out["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for name, args, cid in map(_call_parts, out["tool_calls"])
        ]
    return out


def _fallback(messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]) -> list[dict[str, Any]]:
    chat: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "tool":
            cid = message.get("tool_call_id")
            name = message.get("name") or names.get(cid or "", "")
            result = {"id": cid, "name": name, "content": _maybe_json(content)}
            block = f"<tool_response>\n{json.dumps({k: v for k, v in result.items() if v}, ensure_ascii=False)}\n"
            block += "</tool_response>"
            if chat and chat[-1].get("_tool_results"):
                chat[-1]["content"] += "\n" + block
            else:
                chat.append({"role": "user", "content": block, "_tool_results": True})
            continue
        calls = []
        for name, args, cid in map(_call_parts, message.get("tool_calls") or ()):
            names[cid or ""] = name
            calls.append(json.dumps({"name": name, "arguments": args}, ensure_ascii=False))
        block = f"{OPEN}[\n" + ",\n".join(calls) + f"\n]{CLOSE}" if calls else ""
        text = "\n".join(part for part in (content, block) if part)
        chat.append({**{k: v for k, v in message.items() if k != "tool_calls"}, "content": text})
    for message in chat:
        message.pop("_tool_results", None)
    if tools:
        listing = json.dumps([tool.to_openai() for tool in tools], ensure_ascii=False)
        prompt = FALLBACK_TOOLS_PROMPT.format(tools=listing)
        if chat and chat[0]["role"] == "system":
            chat[0]["content"] = f"{chat[0]['content']}\n\n{prompt}" if chat[0]["content"] else prompt
        else:
            chat.insert(0, {"role": "system", "content": prompt})
    return chat


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def parse_tool_calls(text: str) -> ToolReply:
    """Split a finished reply into its text and its ``<tool_call>`` blocks (each a call, or an invalid one)."""
    stream = ToolCallStream()
    first, last = stream.push(text), stream.finish()
    return ToolReply(
        first.content + last.content,
        first.tool_calls + last.tool_calls,
        first.invalid_tool_calls + last.invalid_tool_calls,
    )


class ToolCallStream:
    """Reads a streamed reply: text outside ``<tool_call>`` blocks passes through as soon as it cannot be the start
    of one, and each block comes out as a call once its ``</tool_call>`` arrives (one inside a JSON string is part of
    an argument's value, not the block's end)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._inside = False

    def push(self, text: str) -> ToolReply:
        """Add streamed text; returns what became final."""
        self._buffer += text
        content: list[str] = []
        calls: list[ToolCall] = []
        invalid: list[InvalidToolCall] = []
        while True:
            if self._inside:
                end = _block_end(self._buffer)
                if end < 0:
                    break
                self._close_block(end, calls, invalid)
                continue
            start = self._buffer.find(OPEN)
            if start >= 0:
                content.append(self._buffer[:start])
                self._buffer, self._inside = self._buffer[start + len(OPEN) :], True
                continue
            keep = next((n for n in range(len(OPEN) - 1, 0, -1) if self._buffer.endswith(OPEN[:n])), 0)
            content.append(self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            break
        return ToolReply("".join(content), calls, invalid)

    def finish(self) -> ToolReply:
        """End of the reply: a held-back tail is text; an unclosed block is an invalid call, unless it holds a
        ``</tool_call>`` inside what only looked like a string (an unpaired quote): that one ends it."""
        if not self._inside:
            rest, self._buffer = self._buffer, ""
            return ToolReply(rest, [], [])
        end = self._buffer.find(CLOSE)
        if end < 0:
            rest, self._buffer, self._inside = self._buffer, "", False
            return ToolReply("", [], [InvalidToolCall(OPEN + rest, "the reply ended inside a <tool_call> block")])
        calls: list[ToolCall] = []
        invalid: list[InvalidToolCall] = []
        self._close_block(end, calls, invalid)
        after = self.push("")
        last = self.finish()
        return ToolReply(
            after.content + last.content,
            calls + after.tool_calls + last.tool_calls,
            invalid + after.invalid_tool_calls + last.invalid_tool_calls,
        )

    def _close_block(self, end: int, calls: list[ToolCall], invalid: list[InvalidToolCall]) -> None:
        block, self._buffer, self._inside = self._buffer[:end], self._buffer[end + len(CLOSE) :], False
        parsed, error = _parse_block(block)
        calls.extend(parsed)
        if error:
            invalid.append(InvalidToolCall(OPEN + block + CLOSE, error))


def _block_end(block: str) -> int:
    """Where a block's ``</tool_call>`` starts: the first one outside a JSON string, or -1."""
    in_string = escaped = False
    for i, char in enumerate(block):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif block.startswith(CLOSE, i):
            return i
    return -1


def _parse_block(block: str) -> tuple[list[ToolCall], str | None]:
    """A block's calls (an object, or a list of them as SmolLM2-1.7B writes), or the reason it has none."""
    try:
        value = json.loads(block)
    except ValueError as err:
        return [], f"not JSON: {err}"
    calls = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return [], "a call must be a JSON object with a string 'name'"
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            arguments = _maybe_json(arguments)
        if not isinstance(arguments, dict):
            return [], f"the arguments of {item['name']!r} are not a JSON object"
        calls.append(ToolCall(item["name"], arguments))
    return calls, None

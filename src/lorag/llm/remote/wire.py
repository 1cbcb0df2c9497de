"""Conversion between lorag's requests and results and the OpenAI wire format, kept apart from the client calls.

Everything here is a pure function of its arguments (or, for ``StreamState``, of the chunks pushed into it), so the
mapping a server sees (sampling options, chat messages, tool calls, finish reasons) can be read in one place and
does not depend on which backend or event loop sent the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lorag.llm.adapters import BASE_ADAPTER
from lorag.llm.generation import FinishReason, GenerationResult, SamplingParams, TextDelta, Usage
from lorag.llm.remote.errors import RemoteError
from lorag.llm.remote.options import Backend
from lorag.llm.tools import CLOSE, OPEN, InvalidToolCall, ToolCall, ToolReply

Message = Mapping[str, Any]


def api_root(url: str) -> str:
    """The server's OpenAI API root: ``url`` without a trailing slash, ``/v1`` added when it has no path."""
    url = url.rstrip("/")
    _, _, rest = url.partition("://")
    return url if "/" in rest else f"{url}/v1"


def match_model(wanted: str | None, served: list[str], where: str) -> str:
    """The served base model for ``wanted``: itself, or the one served id whose last part matches (None: the first)."""
    if not served:
        raise RemoteError(f"the server at {where} lists no base model in /v1/models")
    if wanted is None:
        return served[0]
    if wanted in served:
        return wanted
    tail = wanted.rsplit("/", 1)[-1].lower()
    matches = [name for name in served if name.rsplit("/", 1)[-1].lower() == tail]
    if len(matches) == 1:
        return matches[0]
    raise RemoteError(f"the server at {where} does not serve model {wanted!r}; it serves {served}")


def sampling_fields(params: SamplingParams, backend: Backend) -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAI fields and backend extras meaning what ``SamplingParams`` means, or ``ValueError``."""
    body: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature}
    extra: dict[str, Any] = {}
    if params.top_p != 1.0:
        body["top_p"] = params.top_p
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.presence_penalty:
        body["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        body["frequency_penalty"] = params.frequency_penalty
    if params.no_repeat_ngram_size:
        raise ValueError(f"no_repeat_ngram_size is not available on a {backend} server; leave it 0")
    if backend == "llama.cpp":
        # llama-server's own defaults (top_k 40, top_p 0.95, min_p 0.05) would change sampled outputs
        extra.update(top_k=params.top_k, top_p=params.top_p, min_p=0.0)
        if params.repetition_penalty != 1.0:
            extra.update(repeat_penalty=params.repetition_penalty, repeat_last_n=-1)
        if params.min_tokens:
            raise ValueError("min_tokens is not available on a llama.cpp server; leave it 0")
    else:
        if params.top_k:
            extra["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty
        if params.min_tokens:
            extra["min_tokens"] = params.min_tokens
    return body, extra


def wire_message(message: Message) -> dict[str, Any]:
    """A chat message as OpenAI's API takes it: call arguments as JSON text."""
    out = dict(message)
    if out.get("tool_calls"):
        calls = []
        for call in out["tool_calls"]:
            function = dict(call.get("function", {}))
            if not isinstance(function.get("arguments"), str):
                function["arguments"] = json.dumps(function.get("arguments") or {})
            calls.append({**call, "type": "function", "function": function})
        out["tool_calls"] = calls
    return out


def generation_result(
    reply: Any, kind: str, adapter: str | None, adapter_version: str, read_calls: bool
) -> GenerationResult:
    """A whole reply (``chat`` or ``completions``) as a ``GenerationResult``; tool calls also as ``<tool_call>``
    blocks in the text, and as a ``ToolReply`` when ``read_calls``."""
    choice = reply.choices[0]
    usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens) if reply.usage else Usage(0, 0)
    tool_reply = None
    if kind == "chat":
        text = choice.message.content or ""
        calls = [_tool_call(c.function.name, c.function.arguments, c.id) for c in choice.message.tool_calls or ()]
        if read_calls:
            valid = [c for c in calls if isinstance(c, ToolCall)]
            tool_reply = ToolReply(text, valid, [c for c in calls if isinstance(c, InvalidToolCall)])
        text += "".join(_call_block(c) for c in calls)
    else:
        text = choice.text or ""
    return GenerationResult(
        text=text,
        token_ids=[],
        finish_reason=_finish_reason(choice.finish_reason),
        usage=usage,
        adapter=adapter if adapter is not None else BASE_ADAPTER,
        adapter_version=adapter_version,
        tool_reply=tool_reply,
    )


def _tool_call(name: str, arguments: str | None, call_id: str | None) -> ToolCall | InvalidToolCall:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError as err:
        return InvalidToolCall(json.dumps({"name": name, "arguments": arguments}), f"arguments are not JSON: {err}")
    if not isinstance(parsed, dict):
        return InvalidToolCall(json.dumps({"name": name, "arguments": parsed}), "the arguments are not an object")
    return ToolCall(name, parsed, call_id) if call_id else ToolCall(name, parsed)


def _call_block(call: ToolCall | InvalidToolCall) -> str:
    """A call as the ``<tool_call>`` block the wrappers' stream readers parse."""
    if isinstance(call, InvalidToolCall):
        return f"{OPEN}\n{call.text}\n{CLOSE}"
    return f"{OPEN}\n{json.dumps({'name': call.name, 'arguments': call.arguments})}\n{CLOSE}"


def _finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


class StreamState:
    """Folds a stream's chunks into ``TextDelta``s: content as it comes, tool-call fragments gathered by index."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self.calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._pieces = 0

    def push(self, chunk: Any) -> TextDelta | None:
        if getattr(chunk, "usage", None):
            self._usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self._finish = choice.finish_reason
        if self._kind == "completions":
            text = choice.text or ""
        else:
            text = choice.delta.content or ""
            for part in choice.delta.tool_calls or ():
                call = self.calls.setdefault(part.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
        if not text:
            return None
        self._pieces += 1
        return TextDelta(text=text, token_id=None)

    def finish(self) -> TextDelta:
        calls = [_tool_call(c["name"], c["arguments"], c["id"]) for _, c in sorted(self.calls.items())]
        usage = self._usage or Usage(0, self._pieces)
        return TextDelta("".join(map(_call_block, calls)), None, _finish_reason(self._finish), usage)

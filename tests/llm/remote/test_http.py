"""``RemoteEngine`` through ``ChatLorag(base_url=...)`` against a real HTTP server on 127.0.0.1 (``http.server`` in a
thread) that answers each endpoint from a script: retries on 429/5xx, timeouts, an unreachable server, adapter
mapping and the errors for a missing adapter or a server without LoRA support, per backend.

The server speaks the wire format the OpenAI client reads; what comes back through ChatLorag is checked against what
the script sent, and what the server received is checked against what each backend expects. The behaviour against a
real inference server is ``test_llama_server.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("openai")
pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessageChunk

from langchain_lorag import ChatLorag
from lorag.llm import UnknownAdapterError
from lorag.llm.remote import (
    LoraUnsupportedError,
    RemoteConnectionError,
    RemoteEngine,
    RemoteStatusError,
    RemoteTimeoutError,
    ToolCallUnsupportedError,
)
from lorag.serving.llama_server import free_port

Reply = tuple[int, Any] | Callable[[dict[str, Any]], tuple[int, Any]]
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def completion(text: str, *, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class Scripted:
    """A threaded HTTP server: ``replies[(method, path)]`` is a list of replies used in order (the last repeats);
    every request is kept in ``seen`` as ``(method, path, headers, json body)``."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []
        self.delay = 0.0
        self.sse: list[dict[str, Any]] | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                owner.seen.append((method, self.path, dict(self.headers), body))
                if owner.delay:
                    time.sleep(owner.delay)
                queue = owner.replies.get((method, self.path))
                if not queue:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
                status, payload = reply(body) if callable(reply) else reply
                if status == 200 and isinstance(body, dict) and body.get("stream") and owner.sse is not None:
                    self._stream(owner.sse)
                else:
                    self._send(status, payload)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status in (429, 500, 503):
                    self.send_header("retry-after-ms", "5")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: list[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.replies[(method, path)] = list(replies)

    def posts(self, path: str = "/v1/chat/completions") -> list[Any]:
        return [body for method, p, _, body in self.seen if method == "POST" and p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    yield scripted
    scripted.close()


def chat(server: Scripted, **kwargs: Any) -> ChatLorag:
    kwargs.setdefault("backend", "openai-compatible")
    kwargs.setdefault("max_retries", 2)
    kwargs.setdefault("timeout", 5.0)
    return ChatLorag(base_url=server.url, **kwargs)


# ---------------------------------------------------------------------------------------------- retries and timeouts


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_on_rate_limit_and_server_errors_then_succeeds(server: Scripted, status: int):
    server.on("POST", "/v1/chat/completions", (status, {"error": {"message": "busy"}}), (200, completion("hello")))
    reply = chat(server).invoke("hi")
    assert reply.content == "hello"
    assert len(server.posts()) == 2
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] == 10


def test_gives_up_after_max_retries_with_the_servers_message(server: Scripted):
    server.on("POST", "/v1/chat/completions", (503, {"error": {"message": "overloaded"}}))
    with pytest.raises(RemoteStatusError, match="answered 503: overloaded") as caught:
        chat(server, max_retries=1).invoke("hi")
    assert caught.value.status_code == 503
    assert len(server.posts()) == 2


def test_a_client_error_is_not_retried(server: Scripted):
    server.on("POST", "/v1/chat/completions", (400, {"error": {"message": "context too long"}}))
    with pytest.raises(RemoteStatusError, match="context too long"):
        chat(server).invoke("hi")
    assert len(server.posts()) == 1


def test_a_slow_server_times_out_within_the_timeout(server: Scripted):
    server.on("POST", "/v1/chat/completions", (200, completion("late")))
    server.delay = 20.0
    started = time.monotonic()
    with pytest.raises(RemoteTimeoutError, match=r"did not answer within 0.5 s \(1 attempt"):
        chat(server, timeout=0.5, max_retries=0).invoke("hi")
    assert time.monotonic() - started < 10  # gave up long before the server's 20 s answer


def test_an_unreachable_server_fails_fast_and_says_so():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    model = ChatLorag(base_url=url, backend="openai-compatible", timeout=10.0, max_retries=1)
    started = time.monotonic()
    with pytest.raises(RemoteConnectionError, match=r"cannot reach the openai-compatible server at .*is it running"):
        model.invoke("hi")
    assert time.monotonic() - started < 10.0  # within one attempt's timeout, both attempts and the backoff included


async def test_async_calls_retry_and_map_errors_too(server: Scripted):
    server.on("POST", "/v1/chat/completions", (500, {"error": {"message": "x"}}), (200, completion("async ok")))
    assert (await chat(server).ainvoke("hi")).content == "async ok"
    server.on("POST", "/v1/chat/completions", (400, {"error": {"message": "bad request"}}))
    with pytest.raises(RemoteStatusError, match="bad request"):
        await chat(server).ainvoke("hi")


# ---------------------------------------------------------------------------------------------- adapters per backend


def vllm_models(*loras: str) -> dict[str, Any]:
    data = [{"id": BASE, "object": "model", "parent": None, "max_model_len": 8192}]
    data += [{"id": name, "object": "model", "parent": BASE} for name in loras]
    return {"object": "list", "data": data}


def test_vllm_sends_the_adapter_as_the_model_and_the_base_by_its_served_name(server: Scripted):
    server.on("GET", "/v1/models", (200, vllm_models("legal-v2")))
    server.on("POST", "/v1/chat/completions", (200, completion("ok")))
    model = chat(server, backend="vllm", adapters={"legal": "legal-v2"})  # lorag short name as the base
    model.invoke("hi")
    model.invoke("hi", adapter="legal")
    model.bind(adapter="legal-v2").invoke("hi")  # an unmapped name is the served name itself
    assert [body["model"] for body in server.posts()] == [BASE, "legal-v2", "legal-v2"]
    assert model.get_engine().context_window == 8192


def test_vllm_missing_adapter_is_named_before_any_completion_is_sent(server: Scripted):
    server.on("GET", "/v1/models", (200, vllm_models("legal")))
    with pytest.raises(UnknownAdapterError, match=r"no adapter 'medical'.*serves \['legal'\]"):
        chat(server, backend="vllm").invoke("hi", adapter="medical")
    assert server.posts() == []


def test_vllm_without_lora_support_says_how_to_start_it(server: Scripted):
    server.on("GET", "/v1/models", (200, vllm_models()))
    with pytest.raises(LoraUnsupportedError, match="--enable-lora --lora-modules legal=ADAPTER_DIR"):
        chat(server, backend="vllm").invoke("hi", adapter="legal")


def test_vllm_serving_another_model_is_an_error_naming_it(server: Scripted):
    server.on("GET", "/v1/models", (200, vllm_models()))
    with pytest.raises(Exception, match=r"does not serve model 'qwen2.5-0.5b-instruct'"):
        chat(server, backend="vllm", model="qwen2.5-0.5b-instruct").invoke("hi")


def test_openai_compatible_maps_the_adapter_unchecked_and_a_404_is_an_unknown_adapter(server: Scripted):
    server.on("POST", "/v1/chat/completions", (404, {"error": {"message": "The model `x` does not exist."}}))
    with pytest.raises(UnknownAdapterError, match="no model 'x' for adapter 'legal'"):
        chat(server, adapters={"legal": "x"}).invoke("hi", adapter="legal")
    assert [body["model"] for body in server.posts()] == ["x"]


LORAS = [{"id": 0, "path": "/srv/legal.gguf", "scale": 0.0}, {"id": 1, "path": "/srv/medical.gguf", "scale": 0.0}]


def test_llama_cpp_sends_the_lora_list_resolved_by_path_name_or_stem(server: Scripted):
    server.on("GET", "/lora-adapters", (200, LORAS))
    server.on("POST", "/v1/chat/completions", (200, completion("ok")))
    model = chat(server, backend="llama.cpp", adapters={"law": "legal.gguf"})
    model.invoke("hi", adapter="law")  # mapped to a file name
    model.invoke("hi", adapter="medical")  # unmapped: the stem
    model.invoke("hi")  # the base: every adapter at 0, never the server's start-up scales
    loras = [body["lora"] for body in server.posts()]
    assert loras[:2] == [[{"id": 0, "scale": 1.0}], [{"id": 1, "scale": 1.0}]]
    assert loras[2] == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}]
    assert sum(1 for _, path, _, _ in server.seen if path == "/lora-adapters") == 1  # read once


def test_llama_cpp_missing_adapter_lists_what_the_server_loaded(server: Scripted):
    server.on("GET", "/lora-adapters", (200, LORAS))
    with pytest.raises(UnknownAdapterError, match=r"no adapter 'finance'.*0: /srv/legal.gguf"):
        chat(server, backend="llama.cpp").invoke("hi", adapter="finance")


def test_llama_cpp_server_without_adapters_or_without_the_endpoint(server: Scripted):
    server.on("POST", "/v1/chat/completions", (200, completion("base")))
    server.on("GET", "/lora-adapters", (200, []))
    with pytest.raises(LoraUnsupportedError, match=r"loaded no LoRA adapters.*--lora legal.gguf"):
        chat(server, backend="llama.cpp").invoke("hi", adapter="legal")
    del server.replies[("GET", "/lora-adapters")]  # a server that is not llama-server: 404
    model = chat(server, backend="llama.cpp", timeout=4.0)
    with pytest.raises(LoraUnsupportedError, match="no /lora-adapters endpoint"):
        model.invoke("hi", adapter="legal")
    assert model.invoke("hi").content == "base"  # the base still works, without a lora field
    assert "lora" not in server.posts()[-1]


# ---------------------------------------------------------------------------------------------- options and keys


def test_sampling_options_mean_what_they_mean_locally(server: Scripted):
    server.on("GET", "/lora-adapters", (200, []))
    server.on("POST", "/v1/chat/completions", (200, completion("ok")))
    chat(server, backend="llama.cpp", temperature=0.7, seed=3, stop=["\n"], repetition_penalty=1.2).invoke("hi")
    body = server.posts()[-1]
    assert body["temperature"] == 0.7 and body["seed"] == 3 and body["stop"] == ["\n"]
    assert body["top_k"] == 0 and body["min_p"] == 0.0 and body["top_p"] == 1.0  # not llama-server's 40/0.05/0.95
    assert body["repeat_penalty"] == 1.2 and body["repeat_last_n"] == -1
    with pytest.raises(ValueError, match=r"no_repeat_ngram_size is not available on a llama.cpp server"):
        chat(server, backend="llama.cpp").invoke("hi", no_repeat_ngram_size=3)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        chat(server).invoke("hi", temperature=-1)


def test_the_api_key_is_sent_and_openai_api_key_never_is(server: Scripted, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-secret")
    server.on("POST", "/v1/chat/completions", (200, completion("ok")))
    chat(server).invoke("hi")
    chat(server, api_key="server-token").invoke("hi")
    headers = [h.get("Authorization") or h.get("authorization") for m, p, h, _ in server.seen if m == "POST"]
    assert headers == ["Bearer no-key", "Bearer server-token"]
    assert "server-token" not in repr(chat(server, api_key="server-token"))


def test_bad_settings_are_refused_up_front():
    with pytest.raises(ValueError, match="backend must be one of"):
        RemoteEngine("http://127.0.0.1:1", backend="sglang")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url must be an http"):
        RemoteEngine("127.0.0.1:8080")


# ---------------------------------------------------------------------------------------------- tools and structure


def test_tool_calls_come_back_as_langchain_tool_calls(server: Scripted):
    call = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    server.on("POST", "/v1/chat/completions", (200, completion("", tool_calls=[call])))

    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    reply = chat(server).bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Paris?")
    assert reply.tool_calls == [{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_7", "type": "tool_call"}]
    sent = server.posts()[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_calls_arrive_as_tool_call_chunks(server: Scripted):
    def event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}

    server.sse = [
        event({"role": "assistant", "content": "Let me check. "}),
        event({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}, "tool_calls"),
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        },
    ]
    server.on("POST", "/v1/chat/completions", (200, None))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    total: AIMessageChunk | None = None
    for chunk in chat(server).bind_tools([tool]).stream("Weather in Oslo?"):
        total = chunk if total is None else total + chunk
    assert total is not None
    assert total.content == "Let me check. "
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 9
    assert server.posts()[-1]["stream_options"] == {"include_usage": True}


def test_structured_output_sends_the_closed_schema_as_response_format(server: Scripted):
    server.on("POST", "/v1/chat/completions", (200, completion('{"name": "Ada", "age": 36}')))
    schema = {
        "title": "Person",
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    assert chat(server).with_structured_output(schema).invoke("Ada, 36") == {"name": "Ada", "age": 36}
    sent = server.posts()[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["additionalProperties"] is False


def test_a_forced_call_answered_in_prose_is_an_error_and_auto_is_not(server: Scripted):
    server.on("POST", "/v1/chat/completions", (200, completion("It is sunny in Paris.")))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with pytest.raises(ToolCallUnsupportedError, match="forced but the openai-compatible server"):
        chat(server).bind_tools([tool], tool_choice="required").invoke("Weather?")
    reply = chat(server).bind_tools([tool]).invoke("Weather?")
    assert reply.content == "It is sunny in Paris." and reply.tool_calls == []


def test_extra_body_is_sent_under_lorags_own_fields(server: Scripted):
    server.on("GET", "/lora-adapters", (200, LORAS))
    server.on("POST", "/v1/chat/completions", (200, completion("ok")))
    extra = {"cache_prompt": False, "lora": [{"id": 1, "scale": 1.0}], "top_k": 5}
    model = chat(server, backend="llama.cpp", extra_body=extra)
    model.invoke("hi", adapter="legal")
    body = server.posts()[-1]
    assert body["cache_prompt"] is False
    assert body["lora"] == [{"id": 0, "scale": 1.0}] and body["top_k"] == 0  # the call's adapter and options win
    assert model._identifying_params["extra_body"] == extra

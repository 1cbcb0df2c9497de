"""ChatLorag (LangChain) and LoragLLM (LlamaIndex) select IA3, bottleneck, prompt- and prefix-tuning adapters by name,
exactly as they select LoRA adapters: per call, with the engine's output for that adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.caches import InMemoryCache

from langchain_lorag import ChatLorag
from llama_index.llms.lorag import LoragLLM
from tests.llm.lora_helpers import OTHER_KINDS


@pytest.fixture()
def adapters(adapter_dirs, kind_dirs) -> dict[str, str]:
    return {"a0": str(adapter_dirs["a0"]), **{k: str(v) for k, v in kind_dirs.items()}}


def test_chat_lorag_selects_every_kind(tiny_llm_dir: Path, adapters) -> None:
    chat = ChatLorag(model=str(tiny_llm_dir), quantization="none", device="cpu", max_tokens=8, adapters=adapters)
    engine = chat.get_engine()
    messages = [{"role": "user", "content": "Hello there"}]
    base = chat.invoke("Hello there").content
    for kind in OTHER_KINDS:
        reply = chat.invoke("Hello there", adapter=kind)
        assert reply.response_metadata["adapter"] == kind
        assert reply.content == engine.generate(messages=messages, adapter=kind, max_tokens=8).text != base
        assert chat.bind(adapter=kind).invoke("Hello there").content == reply.content
        assert "".join(c.content for c in chat.stream("Hello there", adapter=kind)) == reply.content


def test_chat_lorag_cache_keys_carry_the_kind_adapters_version(tiny_llm_dir: Path, adapters) -> None:
    chat = ChatLorag(
        model=str(tiny_llm_dir),
        quantization="none",
        device="cpu",
        max_tokens=8,
        adapters=adapters,
        cache=InMemoryCache(),
    )
    keys = {kind: chat._get_llm_string(adapter=kind) for kind in ("a0", *OTHER_KINDS)}
    assert len(set(keys.values())) == len(keys)
    assert all(chat.get_engine().adapter_version(kind) in key for kind, key in keys.items())
    first = chat.invoke("Hello there", adapter="prompt-tuning").content
    assert chat.invoke("Hello there", adapter="prompt-tuning").content == first  # served from the cache
    assert chat.invoke("Hello there").content != first  # the base has its own key, not the adapter's entry


def test_llamaindex_llm_selects_every_kind(tiny_llm_dir: Path, adapters) -> None:
    llm = LoragLLM(model=str(tiny_llm_dir), quantization="none", device="cpu", max_tokens=8, adapters=adapters)
    base = llm.complete("The quick brown fox").text
    for kind in OTHER_KINDS:
        reply = llm.complete("The quick brown fox", adapter=kind)
        assert reply.raw["adapter"] == kind
        assert reply.text == llm.engine.generate("The quick brown fox", adapter=kind, max_tokens=8).text != base

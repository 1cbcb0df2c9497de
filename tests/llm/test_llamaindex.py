"""LlamaIndex LoragLLM: complete, chat, streaming, async, adapter per call, Settings.llm, RetrieverQueryEngine."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import LLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index.llms.lorag import LoragLLM


@pytest.fixture()
def llm(tiny_llm_dir: Path, adapter_dirs) -> LoragLLM:
    return LoragLLM(
        model=str(tiny_llm_dir),
        quantization="none",
        device="cpu",
        max_tokens=8,
        adapters={k: str(v) for k, v in adapter_dirs.items()},
    )


def test_is_an_llm_with_metadata(llm: LoragLLM) -> None:
    assert isinstance(llm, LLM)
    assert LoragLLM.class_name() == "Lorag_LLM"
    assert llm.metadata.context_window == 512  # the tiny model's max_position_embeddings
    assert llm.metadata.num_output == 8
    assert llm.metadata.is_chat_model


def test_complete_and_stream_with_adapter_per_call(llm: LoragLLM) -> None:
    base = llm.complete("The quick brown fox").text
    a0 = llm.complete("The quick brown fox", adapter="a0")
    assert a0.text != base
    assert a0.raw["adapter"] == "a0" and a0.raw["usage"]["completion_tokens"] >= 1
    pieces = list(llm.stream_complete("The quick brown fox", adapter="a0"))
    assert pieces[-1].text == a0.text
    assert "".join(p.delta or "" for p in pieces) == a0.text
    with pytest.raises(LookupError, match="unknown adapter 'nope'"):
        llm.complete("hi", adapter="nope")


def test_chat_and_stream_chat(llm: LoragLLM) -> None:
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hello")]
    reply = llm.chat(messages, adapter="a1")
    assert reply.message.role.value == "assistant"
    streamed = list(llm.stream_chat(messages, adapter="a1"))
    assert streamed[-1].message.content == reply.message.content


async def test_async_twins(llm: LoragLLM) -> None:
    sync = llm.complete("Paris is", adapter="a2").text
    assert (await llm.acomplete("Paris is", adapter="a2")).text == sync
    pieces = [p async for p in await llm.astream_complete("Paris is", adapter="a2")]
    assert pieces[-1].text == sync
    messages = [ChatMessage(role="user", content="Hello")]
    chat = llm.chat(messages, adapter="a2").message.content
    assert (await llm.achat(messages, adapter="a2")).message.content == chat
    streamed = [r async for r in await llm.astream_chat(messages, adapter="a2")]
    assert streamed[-1].message.content == chat


class FixedRetriever(BaseRetriever):
    """Returns the same two nodes for any query."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(text="Paris is the capital of France."), score=1.0),
            NodeWithScore(node=TextNode(text="Madrid is the capital of Spain."), score=0.5),
        ]


def test_settings_llm_and_retriever_query_engine(llm: LoragLLM) -> None:
    # LlamaIndex budgets prompts with its own tokenizer and reserves more than the tiny model's 512 positions;
    # the real prompt here is ~100 tokens, so a larger declared window is safe for this test.
    llm.context_window = 2048
    previous = Settings._llm
    try:
        Settings.llm = llm
        assert Settings.llm is llm
        engine = RetrieverQueryEngine.from_args(FixedRetriever())
        answer = engine.query("What is the capital of France?")
        assert answer.source_nodes and len(answer.source_nodes) == 2
        legal_engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm.with_adapter("a0"))
        legal_answer = legal_engine.query("What is the capital of France?")
        assert str(legal_answer) != str(answer)  # the adapter changed the answer of the same query
        direct = llm.with_adapter("a0")
        assert direct.engine is llm.engine  # one base in memory
    finally:
        Settings._llm = previous

"""The LCEL chain and the LlamaIndex query engine answer through lorag's RAG composition, as ``RagPipeline`` does: they
decline below the relevance and answerability gates without calling the model, cut a looping answer, mark citations,
and give ``RagPipeline``'s answer on the same passages and model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, MockLLM
from pydantic import Field

import langchain_lorag
import llama_index.retrievers.lorag as llama_retrievers
from llama_index.query_engine.lorag import LoragQueryEngine, create_query_engine
from lorag.rag.pipeline import RagPipeline
from lorag.rag.prompt import NO_ANSWER
from lorag.retrieval import HybridRetriever
from tests.rag.test_composition import BagOfWords, gate
from tests.rag.test_frameworks import METAS, TEXTS

ON_TOPIC = "How is CORS enabled with CORSMiddleware?"
OFF_TOPIC = "Why do volcanoes erupt?"  # no word in common: dense similarity 0
LOOPING = "Use the CORS middleware [1].\n  allowOrigin: {\n    allowOrigin: {\n      allowOrigin: {\n"
CUT = "Use the CORS middleware [1].\n  allowOrigin: {"


@pytest.fixture
def hybrid() -> HybridRetriever:
    return HybridRetriever.from_texts(TEXTS, BagOfWords(), metadatas=METAS)


class Recording:
    """A chat model (a runnable over messages) that records its calls and replies with a fixed text."""

    def __init__(self, reply: str) -> None:
        self.calls: list[Any] = []
        self.reply = reply

    def __call__(self, messages: Any) -> AIMessage:
        self.calls.append(messages)
        return AIMessage(self.reply)


class FixedLLM(MockLLM):
    """A LlamaIndex LLM that records its prompts and replies with a fixed text (streamed word by word)."""

    reply: str = ""
    prompts: list[str] = Field(default_factory=list)

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.reply)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def gen() -> Iterator[CompletionResponse]:
            text = ""
            for word in self.reply.split(" "):
                delta = word if not text else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


def chain_for(hybrid: HybridRetriever, llm: Any, **kwargs: Any) -> Any:
    retriever = langchain_lorag.LoragHybridRetriever(retriever=hybrid, k=2)
    return langchain_lorag.create_rag_chain(retriever, llm, **kwargs)


def engine_for(hybrid: HybridRetriever, llm: Any, **kwargs: Any) -> LoragQueryEngine:
    return create_query_engine(llama_retrievers.LoragHybridRetriever(hybrid, similarity_top_k=2), llm, **kwargs)


def test_the_chain_declines_below_the_relevance_gate_without_calling_the_model(hybrid: HybridRetriever) -> None:
    model = Recording("made up [1]")
    result = chain_for(hybrid, RunnableLambda(model)).invoke(OFF_TOPIC)
    declined = result.pop("declined")
    assert result == {"answer": NO_ANSWER, "sources": [], "abstained": True} and model.calls == []
    assert declined["gate"] == "relevance" and "below min_relevance 0.3" in declined["reason"]
    answered = chain_for(hybrid, RunnableLambda(model)).invoke(ON_TOPIC)
    assert answered["answer"] == "made up [1]" and not answered["abstained"] and len(model.calls) == 1
    assert answered["declined"] is None
    off = chain_for(hybrid, RunnableLambda(model), min_relevance=None).invoke(OFF_TOPIC)
    assert not off["abstained"] and len(model.calls) == 2


def test_the_chain_declines_below_the_answerability_gate(hybrid: HybridRetriever) -> None:
    model = Recording("an answer [1]")
    low = chain_for(hybrid, RunnableLambda(model), min_answerability=0.5, answerability=gate(-10.0))
    assert low.invoke(ON_TOPIC)["abstained"] and model.calls == []
    high = chain_for(hybrid, RunnableLambda(model), min_answerability=0.5, answerability=gate(10.0))
    assert high.invoke(ON_TOPIC)["answer"] == "an answer [1]"


def test_the_chain_cuts_a_loop_and_marks_citations(hybrid: HybridRetriever) -> None:
    result = chain_for(hybrid, FakeListChatModel(responses=[LOOPING])).invoke(ON_TOPIC)
    assert result["answer"] == CUT and not result["abstained"]
    numbered = [(d.metadata["number"], d.metadata["cited"], d.metadata.get("hop", 0)) for d in result["sources"]]
    assert numbered == [(1, True, 0), (2, False, 0), (3, False, 1)]  # two searches by default: one follow-up passage
    assert result["sources"][0].metadata["source"] == "cors.md" and result["sources"][0].id
    chunks = list(chain_for(hybrid, FakeListChatModel(responses=[LOOPING])).stream(ON_TOPIC))
    assert "".join(c.get("answer", "") for c in chunks) == CUT  # streamed: exactly the final answer
    assert chunks[-1]["abstained"] is False and chunks[-1]["sources"][0].metadata["cited"]


def test_the_chain_s_model_no_answer_reply_abstains_with_uncited_sources(hybrid: HybridRetriever) -> None:
    result = chain_for(hybrid, FakeListChatModel(responses=["The documents don't contain the answer [1]."]))
    answer = result.invoke(ON_TOPIC)
    assert answer["abstained"] and answer["sources"] and not any(d.metadata["cited"] for d in answer["sources"])


def test_the_query_engine_declines_below_the_relevance_gate(hybrid: HybridRetriever) -> None:
    llm = FixedLLM("made up [1]")
    response = engine_for(hybrid, llm).query(OFF_TOPIC)
    assert str(response) == NO_ANSWER and response.source_nodes == [] and llm.prompts == []
    assert response.metadata["abstained"] and response.metadata["declined"]["gate"] == "relevance"
    answered = engine_for(hybrid, llm).query(ON_TOPIC)
    assert str(answered) == "made up [1]" and not answered.metadata["abstained"] and len(llm.prompts) == 1
    assert answered.metadata["declined"] is None


def test_the_query_engine_declines_below_the_answerability_gate(hybrid: HybridRetriever) -> None:
    llm = FixedLLM("an answer [1]")
    low = engine_for(hybrid, llm, min_answerability=0.5, answerability=gate(-10.0)).query(ON_TOPIC)
    assert low.metadata["declined"]["gate"] == "answerability" and llm.prompts == []
    assert str(engine_for(hybrid, llm, min_answerability=0.5, answerability=gate(10.0)).query(ON_TOPIC)) == (
        "an answer [1]"
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_the_query_engine_cuts_a_loop_and_marks_citations(hybrid: HybridRetriever, streaming: bool) -> None:
    response = engine_for(hybrid, FixedLLM(LOOPING), streaming=streaming).query(ON_TOPIC)
    text = "".join(response.response_gen) if streaming else str(response)  # type: ignore[union-attr]
    assert text == CUT and response.metadata["abstained"] is False
    cited = [
        (n.node.metadata["number"], n.node.metadata["cited"], n.node.metadata.get("hop", 0))
        for n in response.source_nodes
    ]
    assert cited == [(1, True, 0), (2, False, 0), (3, False, 1)]  # two retrievals by default: one follow-up node
    assert response.source_nodes[0].node.metadata["citation"] == "[1] cors.md"


def test_the_query_engine_s_old_import_path_still_works() -> None:
    from llama_index.retrievers.lorag import create_query_engine as old
    from llama_index.retrievers.lorag.query_engine import source_label

    assert old is create_query_engine and source_label({"source": "a.md"}) == "a.md"


def test_chain_query_engine_and_pipeline_answer_alike_on_tiny_models(
    hybrid: HybridRetriever, tiny_llm_dir: Path
) -> None:
    from langchain_lorag import ChatLorag
    from llama_index.llms.lorag import LoragLLM
    from lorag.llm import LoragEngine

    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    try:
        for question in (ON_TOPIC, "Which tasks run after the response is sent?"):
            expected = RagPipeline(hybrid, engine, k=2, max_new_tokens=8).ask(question)
            chain = chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8)
            result = chain.invoke(question)
            response = engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8)).query(question)
            assert expected.answer and result["answer"] == str(response) == expected.answer
            assert result["abstained"] is response.metadata["abstained"] is expected.abstained
            numbers = [s.number for s in expected.sources]
            assert [d.metadata["number"] for d in result["sources"]] == numbers
            assert [n.node.metadata["number"] for n in response.source_nodes] == numbers
            assert [d.metadata["cited"] for d in result["sources"]] == [s.cited for s in expected.sources]
        assert result["declined"] is None and response.metadata["declined"] is None and expected.declined is None
        declined = RagPipeline(hybrid, engine, k=2, max_new_tokens=8).ask(OFF_TOPIC)
        chain = chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8)
        result = chain.invoke(OFF_TOPIC)
        response = engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8)).query(OFF_TOPIC)
        assert declined.abstained and result["answer"] == str(response) == declined.answer == NO_ANSWER
        assert declined.declined is not None and declined.declined.gate == "relevance"
        assert result["declined"] == response.metadata["declined"] == asdict(declined.declined)
    finally:
        engine.close()


def test_with_the_answerability_gate_on_every_front_end_forbids_the_no_answer_reply(
    hybrid: HybridRetriever, tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``lorag ask`` with the gate on (abstain_confidence 1.0): the gate alone decides, so the model answers with
    the no-answer reply's opening tokens banned; the chain and the query engine send the pipeline's ban."""
    from langchain_lorag import ChatLorag
    from llama_index.llms.lorag import LoragLLM
    from lorag.llm import LoragEngine

    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    bans: list[Any] = []
    submit = engine.submit

    def recording(*args: Any, **kwargs: Any) -> Any:
        bans.append(kwargs.get("sequence_bias") or ())
        return submit(*args, **kwargs)

    monkeypatch.setattr(engine, "submit", recording)
    gate_on: dict[str, Any] = {"min_answerability": 0.5, "answerability": gate(10.0)}
    try:
        pipeline = RagPipeline(hybrid, engine, k=2, max_new_tokens=8, abstain_confidence=1.0, **gate_on)
        expected = pipeline.ask(ON_TOPIC)
        chain = chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8, **gate_on)
        result = chain.invoke(ON_TOPIC)
        response = engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8), **gate_on).query(ON_TOPIC)
        assert result["answer"] == str(response) == expected.answer
        assert len(bans) == 3 and bans[0] and bans[0] == tuple(bans[1]) == tuple(bans[2])
        chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8).invoke(ON_TOPIC)
        engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8)).query(ON_TOPIC)
        assert bans[3:] == [(), ()]  # gate off: the model's own no-answer reply may stand
    finally:
        engine.close()


async def test_the_chain_and_the_query_engine_answer_alike_asynchronously(hybrid: HybridRetriever) -> None:
    chain = chain_for(hybrid, FakeListChatModel(responses=[LOOPING]))
    assert (await chain.ainvoke(ON_TOPIC))["answer"] == CUT
    response = await engine_for(hybrid, FixedLLM(LOOPING)).aquery(ON_TOPIC)
    assert str(response) == CUT and response.source_nodes[0].node.metadata["cited"]
    declined = await chain.ainvoke(OFF_TOPIC)
    assert declined["abstained"] and declined["answer"] == NO_ANSWER


def test_with_follow_up_searches_every_front_end_gives_the_same_passages_and_answer(
    hybrid: HybridRetriever, tiny_llm_dir: Path
) -> None:
    """``hops=2``: the chain and the query engine add the pipeline's follow-up passage (lorag's retrievers searched as
    deep as the pipeline searches), mark it, and answer alike."""
    from langchain_lorag import ChatLorag
    from llama_index.llms.lorag import LoragLLM
    from lorag.llm import LoragEngine

    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    try:
        expected = RagPipeline(hybrid, engine, k=2, max_new_tokens=8, hops=2).ask(ON_TOPIC)
        result = chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8, hops=2).invoke(ON_TOPIC)
        response = engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8), hops=2).query(ON_TOPIC)
        sources = [s.source for s in expected.sources]
        assert len(sources) == 3 and [s.hop for s in expected.sources] == [0, 0, 1]
        assert [d.metadata["source"] for d in result["sources"]] == sources
        assert [n.node.metadata["source"] for n in response.source_nodes] == sources
        assert [d.metadata.get("hop", 0) for d in result["sources"]] == [0, 0, 1]
        assert [n.node.metadata.get("hop", 0) for n in response.source_nodes] == [0, 0, 1]
        assert result["answer"] == str(response) == expected.answer
    finally:
        engine.close()


def test_every_front_end_keeps_the_chunks_of_the_best_files_alike() -> None:
    """Two chunks of cors.md rank first: with k=2 and ``chunks_per_file=2`` the question's own search keeps them and
    the best chunk of one more file, in the chain, the query engine and the pipeline alike; with
    ``chunks_per_file=1`` (the default) the top 2 chunks only."""
    from tests.rag.test_hops import NoModel

    texts = [*TEXTS, "CORSMiddleware is enabled with allow_origins, a list of allowed origins."]
    hybrid = HybridRetriever.from_texts(texts, BagOfWords(), metadatas=[*METAS, {"source": "cors.md"}])
    off = {"min_relevance": None, "hops": 1}
    for per_file, count in ((2, 3), (1, 2)):
        plan = RagPipeline(hybrid, NoModel(), k=2, chunks_per_file=per_file, **off)._prepare(ON_TOPIC)  # type: ignore[arg-type]
        sources = [b.source for b in plan.blocks]
        assert len(sources) == count and sources[:2] == ["cors.md", "cors.md"]
        result = chain_for(hybrid, RunnableLambda(Recording("ok [1]")), chunks_per_file=per_file, **off).invoke(
            ON_TOPIC
        )
        response = engine_for(hybrid, FixedLLM("ok [1]"), chunks_per_file=per_file, **off).query(ON_TOPIC)
        assert [d.metadata["source"] for d in result["sources"]] == sources
        assert [n.node.metadata["source"] for n in response.source_nodes] == sources
    with pytest.raises(ValueError, match="chunks_per_file must be a whole number >= 1"):
        chain_for(hybrid, FakeListChatModel(responses=["x"]), chunks_per_file=0)
    with pytest.raises(ValueError, match="chunks_per_file must be a whole number >= 1"):
        engine_for(hybrid, FixedLLM("x"), chunks_per_file=0)


def test_every_front_end_answers_a_choice_question_by_choosing_alike(
    hybrid: HybridRetriever, tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question naming two options gets the option the model scores higher, citing its passage, from the pipeline,
    the chain and the query engine (streaming too), without generating; ``choices=False`` generates in each."""
    from langchain_lorag import ChatLorag
    from llama_index.llms.lorag import LoragLLM
    from lorag.llm import LoragEngine

    question = "Which is mounted on a path to serve static files, StaticFiles or CORSMiddleware?"
    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    scored_with: list[str | None] = []
    score = engine.continuation_logprobs

    def recording(messages: Any, replies: Any, *, adapter: str | None = None) -> Any:
        scored_with.append(adapter)
        return score(messages, replies, adapter=adapter) if adapter is None else [0.0, -1.0]  # no such adapters

    monkeypatch.setattr(engine, "continuation_logprobs", recording)
    try:
        expected = RagPipeline(hybrid, engine, k=2, max_new_tokens=8).ask(question)
        chat, llm = ChatLorag(engine=engine, max_tokens=8), LoragLLM(engine=engine, max_tokens=8)
        result = chain_for(hybrid, chat, max_new_tokens=8).invoke(question)
        response = engine_for(hybrid, llm).query(question)
        streamed = engine_for(hybrid, llm, streaming=True).query(question)
        option, cited = expected.answer.split(" [")
        assert expected.usage["completion_tokens"] == 0 and option in {"StaticFiles", "CORSMiddleware"}
        assert [s.number for s in expected.cited_sources()] == [int(cited.rstrip("]"))]
        assert option in expected.cited_sources()[0].text
        assert result["answer"] == str(response) == "".join(streamed.response_gen) == expected.answer
        assert [d.metadata["cited"] for d in result["sources"]] == [s.cited for s in expected.sources]
        generated = RagPipeline(hybrid, engine, k=2, max_new_tokens=8, choices=False).ask(question)
        assert generated.usage["completion_tokens"] > 0
        assert chain_for(hybrid, chat, max_new_tokens=8, choices=False).invoke(question)["answer"] == generated.answer
        assert str(engine_for(hybrid, llm, choices=False).query(question)) == generated.answer
        assert scored_with == [None] * 4
        chain_for(hybrid, chat.bind(adapter="bound"), max_new_tokens=8).invoke(question)
        assert scored_with[4:] == ["bound"]  # scored under the adapter the chain answers with
    finally:
        engine.close()


def test_a_declined_question_is_searched_further_alike_by_every_front_end(
    hybrid: HybridRetriever, tiny_llm_dir: Path
) -> None:
    """With one search per question, the gate declines the question's own two passages and accepts them with a
    follow-up one: the chain and the query engine search further as the pipeline does, and answer alike from the
    same three passages."""
    from langchain_lorag import ChatLorag
    from llama_index.llms.lorag import LoragLLM
    from lorag.llm import LoragEngine
    from tests.rag.test_hops import NeedsThree

    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    gate_on: dict[str, Any] = {"min_answerability": 0.5, "answerability": NeedsThree(), "hops": 1}
    try:
        expected = RagPipeline(hybrid, engine, k=2, max_new_tokens=8, **gate_on).ask(ON_TOPIC)
        result = chain_for(hybrid, ChatLorag(engine=engine, max_tokens=8), max_new_tokens=8, **gate_on).invoke(ON_TOPIC)
        response = engine_for(hybrid, LoragLLM(engine=engine, max_tokens=8), **gate_on).query(ON_TOPIC)
        assert not expected.abstained and [s.hop for s in expected.sources] == [0, 0, 1]
        sources = [s.source for s in expected.sources]
        assert [d.metadata["source"] for d in result["sources"]] == sources
        assert [n.node.metadata["source"] for n in response.source_nodes] == sources
        assert [d.metadata.get("hop", 0) for d in result["sources"]] == [0, 0, 1]
        assert result["answer"] == str(response) == expected.answer
        at_once = {**gate_on, "hops_when_declined": 1}
        assert chain_for(hybrid, RunnableLambda(Recording("x")), **at_once).invoke(ON_TOPIC)["abstained"]
        assert engine_for(hybrid, FixedLLM("x"), **at_once).query(ON_TOPIC).metadata["declined"]["gate"] == (
            "answerability"
        )
    finally:
        engine.close()


@pytest.mark.parametrize("hops", [0, -1, True, 1.5])
def test_bad_hops_are_refused_by_both_frameworks(hybrid: HybridRetriever, hops: Any) -> None:
    with pytest.raises(ValueError, match="hops must be an integer >= 1"):
        chain_for(hybrid, FakeListChatModel(responses=["x"]), hops=hops)
    with pytest.raises(ValueError, match="hops must be an integer >= 1"):
        engine_for(hybrid, FixedLLM("x"), hops=hops)
    with pytest.raises(ValueError, match="hops_when_declined must be an integer >= 1"):
        chain_for(hybrid, FakeListChatModel(responses=["x"]), hops_when_declined=hops)
    with pytest.raises(ValueError, match="hops_when_declined must be an integer >= 1"):
        engine_for(hybrid, FixedLLM("x"), hops_when_declined=hops)


def test_a_foreign_retriever_is_asked_as_it_is_for_follow_ups(hybrid: HybridRetriever) -> None:
    """A retriever that takes no ``k`` per call returns its own number of documents; the follow-up adds the best new
    one of those (here the third document, the only one left)."""
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            first = query == ON_TOPIC
            picked = [0, 1] if first else [0, 2]
            return [Document(TEXTS[i], id=str(i), metadata=METAS[i]) for i in picked]

    result = langchain_lorag.create_rag_chain(Fixed(), RunnableLambda(Recording("ok [3]")), min_relevance=None, hops=2)
    sources = result.invoke(ON_TOPIC)["sources"]
    assert [(d.metadata["source"], d.metadata.get("hop", 0)) for d in sources] == [
        ("cors.md", 0),
        ("tasks.md", 0),
        ("static.md", 1),
    ]

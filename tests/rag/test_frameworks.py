"""The RAG helpers in both frameworks: an LCEL chain and a LlamaIndex query engine, with numbered cited sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEXTS = [
    "CORS is enabled with CORSMiddleware and a list of allowed origins.",
    "Background tasks run after the response is sent.",
    "Static files are served with StaticFiles mounted on a path.",
]
METAS = [{"source": "cors.md"}, {"source": "tasks.md"}, {"source": "static.md"}]


def test_lcel_chain_with_any_chat_model() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from langchain_lorag import LoragBM25Retriever, create_rag_chain

    retriever = LoragBM25Retriever.from_texts(TEXTS, metadatas=METAS, k=2)
    llm = FakeListChatModel(responses=["Add CORSMiddleware with your origins [1]."])
    result = create_rag_chain(retriever, llm).invoke("How do I enable CORS with CORSMiddleware after the response?")
    assert result["answer"] == "Add CORSMiddleware with your origins [1]."
    first = result["sources"][0]
    assert first.metadata["source"] == "cors.md" and first.metadata["number"] == 1 and first.metadata["cited"]
    assert not result["sources"][1].metadata["cited"]
    assert create_rag_chain(retriever, llm).invoke({"question": "CORS?"})["sources"]


def test_lcel_chain_with_chat_lorag_streams_and_fits_the_window(tiny_llm_dir: Path) -> None:
    from langchain_lorag import ChatLorag, LoragBM25Retriever, create_rag_chain

    retriever = LoragBM25Retriever.from_texts(TEXTS * 20, metadatas=METAS * 20, k=60)
    llm = ChatLorag(model=str(tiny_llm_dir), quantization="none", max_tokens=5)
    chain = create_rag_chain(retriever, llm, max_new_tokens=5)
    chunks = list(chain.stream("How do I enable CORS?"))
    answer = "".join(c.get("answer", "") for c in chunks)
    sources = next(c["sources"] for c in chunks if "sources" in c)
    assert answer and 0 < len(sources) < 60  # the tiny model's 512-token window holds only some of them


def test_llama_index_query_engine_numbers_sources() -> None:
    from llama_index.core.llms import MockLLM

    from llama_index.retrievers.lorag import LoragBM25Retriever, create_query_engine

    seen: list[str] = []

    class RecordingLLM(MockLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            seen.append(prompt)
            return super().complete(prompt, formatted=formatted, **kwargs)

    retriever = LoragBM25Retriever.from_texts(TEXTS, metadatas=METAS, similarity_top_k=2)
    response = create_query_engine(retriever, RecordingLLM(max_tokens=8)).query("How do I enable CORS in tasks?")
    assert [n.node.metadata["number"] for n in response.source_nodes] == [1, 2]
    assert response.source_nodes[0].node.metadata["source"] == "cors.md"
    assert "[1] cors.md\nCORS is enabled" in seen[0] and "Question: How do I enable CORS in tasks?" in seen[0]

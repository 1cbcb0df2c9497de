"""TF-IDF in LangChain and LlamaIndex: ``LoragTfidfRetriever`` in both, and their hybrids with ``sparse="tfidf"``."""

from __future__ import annotations

from langchain_core.documents import Document
from llama_index.core import Document as LlamaDocument
from llama_index.core.base.base_retriever import BaseRetriever

from langchain_lorag.retrievers import LoragHybridRetriever, LoragTfidfRetriever
from llama_index.retrievers.lorag import LoragHybridRetriever as LlamaHybrid
from llama_index.retrievers.lorag import LoragTfidfRetriever as LlamaTfidf
from lorag.retrieval import TfidfIndex
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

DOCS = [Document(id=i, page_content=t, metadata=m) for i, t, m in zip(IDS, CORPUS, METADATAS, strict=True)]
NODES = [LlamaDocument(id_=i, text=t, metadata=m) for i, t, m in zip(IDS, CORPUS, METADATAS, strict=True)]


def test_langchain_tfidf_returns_documents_with_the_index_scores() -> None:
    retriever = LoragTfidfRetriever.from_documents(DOCS, k=2, tfidf_kwargs={"sublinear_tf": True})
    assert isinstance(retriever.index, TfidfIndex) and retriever.index.sublinear_tf
    docs = retriever.invoke("Paris museum")
    expected = retriever.index.search("Paris museum", k=2)
    assert [d.id for d in docs] == [h.id for h in expected] == ["doc-8", "doc-2"]
    assert [d.metadata["score"] for d in docs] == [h.score for h in expected]
    assert docs[0].page_content == CORPUS[8] and docs[0].metadata["topic"] == "geography"
    assert [d.id for d in retriever.invoke("Paris", k=5, filter={"year": {"$lt": 2004}})] == ["doc-2"]


async def test_langchain_tfidf_add_delete_and_async() -> None:
    retriever = LoragTfidfRetriever.from_texts(CORPUS, METADATAS, IDS, k=3)
    retriever.add_documents([Document(id="new", page_content="Zebras live in Africa.")])
    assert (await retriever.ainvoke("zebra"))[0].id == "new"
    retriever.delete(["new"])
    assert retriever.invoke("zebra") == []


def test_langchain_hybrid_with_tfidf(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, k=3, sparse="tfidf")
    docs = retriever.invoke("capital of France")
    assert len(docs) == 3 and set(docs[0].metadata["lorag"]["component_scores"]) == {"tfidf", "dense"}
    assert isinstance(retriever.retriever.sparse, TfidfIndex)


async def test_llamaindex_tfidf_returns_nodes() -> None:
    retriever = LlamaTfidf.from_documents(NODES, similarity_top_k=2, filter={"year": {"$gte": 2004}})
    assert isinstance(retriever, BaseRetriever) and LlamaTfidf.class_name() == "LoragTfidfRetriever"
    nodes = await retriever.aretrieve("Paris museum")
    assert [n.node.node_id for n in nodes] == ["doc-8", "doc-5"] and nodes[0].score >= nodes[1].score > 0
    assert nodes[0].node.metadata == METADATAS[8]


def test_llamaindex_hybrid_with_tfidf(tiny_embedder) -> None:
    retriever = LlamaHybrid.from_documents(NODES, tiny_embedder, similarity_top_k=3, sparse="tfidf")
    nodes = retriever.retrieve("capital of France")
    assert len(nodes) == 3 and set(nodes[0].node.metadata["lorag"]["component_scores"]) == {"tfidf", "dense"}

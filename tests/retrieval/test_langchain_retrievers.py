"""LangChain retrievers: from_texts/from_documents, k and filter per call, async, scores in metadata, vector stores."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_lorag import LoragBM25Retriever, LoragHybridRetriever
from lorag.retrieval import BM25Index
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

DOCS = [Document(id=i, page_content=t, metadata=m) for i, t, m in zip(IDS, CORPUS, METADATAS, strict=True)]


def test_bm25_from_documents_k_and_filter() -> None:
    retriever = LoragBM25Retriever.from_documents(DOCS, k=2, bm25_kwargs={"method": "okapi"})
    assert retriever.index.method == "okapi"
    docs = retriever.invoke("Paris")
    assert len(docs) == 2 and all(d.id in IDS for d in docs)
    assert docs[0].metadata["lorag"]["rank"] == 1 and docs[0].metadata["score"] > 0
    assert [d.id for d in retriever.invoke("Paris", k=5, filter={"year": [2006, 2009]})] in (
        ["doc-5", "doc-8"],
        ["doc-8", "doc-5"],
    )
    assert retriever.invoke("Paris", k=0) == []


async def test_bm25_async_equals_sync() -> None:
    retriever = LoragBM25Retriever.from_texts(CORPUS, METADATAS, IDS, k=3)
    assert await retriever.ainvoke("programming language") == retriever.invoke("programming language")
    assert len(await retriever.ainvoke("programming language", k=1)) == 1


def test_bm25_add_and_delete_documents() -> None:
    retriever = LoragBM25Retriever.from_documents(DOCS)
    retriever.add_documents([Document(id="new", page_content="Zebras live in Africa.")])
    assert retriever.invoke("zebra")[0].id == "new"
    retriever.delete(["new"])
    assert retriever.invoke("zebra") == []


def test_hybrid_with_lorag_embedder(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, k=3, fusion_kwargs={"fusion": "rrf"})
    docs = retriever.invoke("capital of France")
    assert len(docs) == 3
    info = docs[0].metadata["lorag"]
    assert set(info["component_scores"]) == {"bm25", "dense"} and info["rank"] == 1
    geo = retriever.invoke("capital of France", k=10, filter={"topic": "geography"})
    assert {d.id for d in geo} == {"doc-2", "doc-3", "doc-5", "doc-8"}


async def test_hybrid_add_documents_then_async_with_per_call_k_and_filter(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(
        DOCS, tiny_embedder, k=2, filter={"topic": "geography"}, fusion_kwargs={"fusion": "rrf"}
    )
    new = Document(id="new", page_content="Zebras live in Africa.", metadata={"topic": "animals"})
    assert retriever.add_documents([new]) == ["new"]
    assert "new" not in {d.id for d in await retriever.ainvoke("zebra")}  # the retriever's own filter
    assert [d.id for d in await retriever.ainvoke("zebra", k=1, filter={"topic": "animals"})] == ["new"]
    retriever.delete(["new"])
    assert "new" not in retriever.retriever.bm25.docs


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
async def test_hybrid_over_a_langchain_vectorstore(fusion: str) -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    retriever = LoragHybridRetriever.from_texts(
        CORPUS, None, METADATAS, IDS, vectorstore=store, k=4, fusion_kwargs={"fusion": fusion}
    )
    assert len(store.store) == len(CORPUS)
    docs = await retriever.ainvoke("Paris museum")
    assert len(docs) == 4 and len({d.id for d in docs}) == 4
    assert docs[0].id in {"doc-8", "doc-5", "doc-2"}  # BM25 finds Paris documents
    assert all("lorag_id" not in d.metadata for d in docs)
    animals = retriever.invoke("Paris museum", k=4, filter={"topic": "animals"})
    assert len(animals) == 4 and all(d.metadata["topic"] == "animals" for d in animals)
    retriever.delete(["doc-8"])
    assert "doc-8" not in store.store and "doc-8" not in retriever.retriever.bm25.docs


def test_hybrid_with_langchain_embeddings() -> None:
    retriever = LoragHybridRetriever.from_texts(CORPUS, DeterministicFakeEmbedding(size=8), ids=IDS, k=2)
    assert len(retriever.invoke("fox")) == 2


def test_needs_exactly_one_dense_side(tiny_embedder) -> None:
    with pytest.raises(ValueError, match="exactly one of embedding"):
        LoragHybridRetriever.from_texts(CORPUS)
    with pytest.raises(ValueError, match="k"):
        LoragBM25Retriever(index=BM25Index.from_texts(CORPUS), k=-1)

"""LlamaIndex retrievers: NodeWithScore, class_name, filters, RetrieverQueryEngine, SimpleVectorStore backend."""

from __future__ import annotations

import pytest
from llama_index.core import Document
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import SimpleVectorStore

from llama_index.retrievers.lorag import LoragBM25Retriever, LoragHybridRetriever, LoragTfidfRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

DOCS = [Document(id_=i, text=t, metadata=m) for i, t, m in zip(IDS, CORPUS, METADATAS, strict=True)]


def test_bm25_retriever_returns_nodes_with_scores() -> None:
    retriever = LoragBM25Retriever.from_documents(DOCS, similarity_top_k=2)
    assert isinstance(retriever, BaseRetriever) and LoragBM25Retriever.class_name() == "LoragBM25Retriever"
    nodes = retriever.retrieve("Paris museum")
    assert len(nodes) == 2 and all(isinstance(n, NodeWithScore) for n in nodes)
    assert nodes[0].node.node_id == "doc-8" and nodes[0].score >= nodes[1].score > 0
    assert nodes[0].node.metadata == METADATAS[8]


async def test_bm25_filter_and_async() -> None:
    retriever = LoragBM25Retriever.from_texts(CORPUS, IDS, METADATAS, similarity_top_k=5, filter={"year": [2006, 2009]})
    nodes = await retriever.aretrieve("Paris")
    assert sorted(n.node.node_id for n in nodes) == ["doc-5", "doc-8"]


@pytest.mark.parametrize(
    ("cls", "keyword", "name", "value"),
    [
        (LoragBM25Retriever, "bm25_kwargs", "method", "okapi"),
        (LoragTfidfRetriever, "tfidf_kwargs", "sublinear_tf", True),
    ],
)
def test_sparse_from_defaults_builds_its_own_class(cls: type, keyword: str, name: str, value: object) -> None:
    retriever = cls.from_defaults(DOCS, similarity_top_k=2, **{keyword: {name: value}})
    assert type(retriever) is cls and retriever.similarity_top_k == 2 and getattr(retriever.index, name) == value
    assert retriever.retrieve("Paris museum")[0].node.node_id == "doc-8"


def test_hybrid_inside_a_query_engine(tiny_embedder) -> None:
    retriever = LoragHybridRetriever.from_documents(DOCS, tiny_embedder, similarity_top_k=3)
    assert LoragHybridRetriever.class_name() == "LoragHybridRetriever"
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8))
    response = engine.query("What is the capital of France?")
    assert len(response.source_nodes) == 3
    top = response.source_nodes[0]
    assert set(top.node.metadata["lorag"]["component_scores"]) == {"bm25", "dense"}
    assert "lorag" not in top.node.get_content(metadata_mode="llm")
    assert isinstance(response.response, str)


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_hybrid_over_a_llamaindex_vector_store(fusion: str) -> None:
    store = SimpleVectorStore()
    retriever = LoragHybridRetriever.from_texts(
        CORPUS,
        ids=IDS,
        metadatas=METADATAS,
        vector_store=store,
        embed_model=MockEmbedding(embed_dim=8),
        similarity_top_k=4,
        fusion_kwargs={"fusion": fusion},
    )
    assert len(store.data.embedding_dict) == len(CORPUS)
    nodes = retriever.retrieve("Paris museum")
    assert len(nodes) == 4 and len({n.node.node_id for n in nodes}) == 4
    assert nodes[0].node.get_content() in CORPUS
    retriever.filter = {"topic": ["computing", "animals"], "year": [2005, 2007, 2010]}
    assert sorted(n.node.node_id for n in retriever.retrieve("Paris museum")) == ["doc-4", "doc-6", "doc-9"]
    retriever.retriever.delete(["doc-4"])
    assert "doc-4" not in store.data.embedding_dict


def test_hybrid_needs_a_dense_side() -> None:
    with pytest.raises(ValueError, match="embedder"):
        LoragHybridRetriever.from_texts(CORPUS)

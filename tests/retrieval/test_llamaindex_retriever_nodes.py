"""LlamaIndex retrievers return the nodes that were indexed (id, ``ref_doc_id``, relationships, also after a save
and load), take ``LoragEmbedding`` or any ``BaseEmbedding`` for the hybrid's FAISS side, and ``aretrieve`` leaves the
event loop free while it searches."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship

from llama_index.embeddings.lorag import LoragEmbedding
from llama_index.retrievers.lorag import LoragBM25Retriever, LoragHybridRetriever
from llama_index.retrievers.lorag.embedding import LlamaIndexEmbedder
from lorag.retrieval import HybridRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

DOCUMENTS = [Document(id_=f"file-{i}", text=" ".join(CORPUS[i : i + 5]), metadata={"part": i}) for i in (0, 5)]
NODES = SentenceSplitter(chunk_size=24, chunk_overlap=0).get_nodes_from_documents(DOCUMENTS)


def check_same_nodes(retrieved: list[Any]) -> None:
    indexed = {n.node_id: n for n in NODES}
    assert retrieved
    for item in retrieved:
        node, original = item.node, indexed[item.node.node_id]
        assert node.ref_doc_id == original.ref_doc_id in {"file-0", "file-5"}
        assert node.relationships == original.relationships
        assert (node.start_char_idx, node.end_char_idx) == (original.start_char_idx, original.end_char_idx)
        assert {k: v for k, v in node.metadata.items() if k != "lorag"} == original.metadata


def test_bm25_returns_the_indexed_nodes() -> None:
    assert len(NODES) > 2 and NODES[1].relationships[NodeRelationship.PREVIOUS].node_id == NODES[0].node_id
    check_same_nodes(LoragBM25Retriever.from_documents(NODES, similarity_top_k=4).retrieve("foxes Paris wolves"))


def test_hybrid_with_lorag_embedding_keeps_nodes_through_save_and_load(tiny_st_dir: Path, tmp_path: Path) -> None:
    embed_model = LoragEmbedding(model_name=str(tiny_st_dir), device="cpu")
    retriever = LoragHybridRetriever.from_documents(NODES, embed_model, similarity_top_k=4)
    nodes = retriever.retrieve("Which animals live with wolves?")
    check_same_nodes(nodes)
    assert all(n.node.metadata["lorag"]["component_scores"]["dense"] is not None for n in nodes)
    retriever.retriever.save(tmp_path / "index")
    loaded = HybridRetriever.load(tmp_path / "index", LlamaIndexEmbedder(embed_model))
    again = LoragHybridRetriever(loaded, similarity_top_k=4).retrieve("Which animals live with wolves?")
    check_same_nodes(again)
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]


def test_hybrid_takes_any_llama_index_embedding() -> None:
    retriever = LoragHybridRetriever.from_texts(CORPUS, embed_model=MockEmbedding(embed_dim=12), ids=IDS)
    assert retriever.retriever.dense.dimension == 12
    assert len(retriever.retrieve("Paris")) == 4
    with pytest.raises(ValueError, match="not both"):
        LoragHybridRetriever.from_texts(CORPUS, MockEmbedding(embed_dim=4), embed_model=MockEmbedding(embed_dim=4))


class SlowEmbedding(MockEmbedding):
    """Embeds a query in 0.4 s of blocking work, as a CPU model does."""

    def _get_query_embedding(self, query: str) -> list[float]:
        time.sleep(0.4)
        return super()._get_query_embedding(query)


async def test_aretrieve_does_not_block_the_event_loop() -> None:
    retriever = LoragHybridRetriever.from_texts(
        CORPUS, embed_model=SlowEmbedding(embed_dim=8), ids=IDS, metadatas=METADATAS
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    before = ticks
    nodes = await retriever.aretrieve("Paris museum")
    during = ticks - before
    task.cancel()
    assert len(nodes) == 4
    assert during >= 10, f"the loop ticked {during} times during a 0.4 s retrieval"

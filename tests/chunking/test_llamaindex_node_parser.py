"""LoragNodeParser is a native LlamaIndex node parser: offsets, metadata, pipelines and indexes."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import NodeParser
from llama_index.core.schema import MetadataMode, TextNode

from llama_index.node_parser.lorag import LoragNodeParser

TEXT = "Same words here. " * 30 + "\n\nA different ending paragraph. " * 3


def test_is_a_node_parser_with_stable_name() -> None:
    assert issubclass(LoragNodeParser, NodeParser)
    assert LoragNodeParser.class_name() == "LoragNodeParser"
    assert LoragNodeParser(method="sentence", chunk_size=64).to_dict()["method"] == "sentence"


def test_nodes_have_exact_offsets_and_parent_metadata() -> None:
    doc = Document(text=TEXT, metadata={"source": "a.txt"})
    nodes = LoragNodeParser("recursive", chunk_size=90, chunk_overlap=30).get_nodes_from_documents([doc])
    assert len(nodes) > 3
    for node in nodes:
        assert isinstance(node, TextNode)
        assert TEXT[node.start_char_idx : node.end_char_idx] == node.text
        assert (node.metadata["start_char_idx"], node.metadata["end_char_idx"]) == (
            node.start_char_idx,
            node.end_char_idx,
        )
        assert node.metadata["source"] == "a.txt"
        assert node.ref_doc_id == doc.doc_id
        assert "start_char_idx" not in node.get_content(metadata_mode=MetadataMode.EMBED)


def test_metadata_text_counts_against_chunk_size() -> None:
    doc = Document(text=TEXT, metadata={"title": "t" * 40})
    nodes = LoragNodeParser("recursive", chunk_size=100).get_nodes_from_documents([doc])
    for node in nodes:
        assert len(node.get_content(metadata_mode=MetadataMode.EMBED)) <= 100
    with pytest.raises(ValueError, match="metadata"):
        LoragNodeParser("recursive", chunk_size=30).get_nodes_from_documents([doc])


def test_runs_in_ingestion_pipeline_and_vector_index() -> None:
    docs = [Document(text=TEXT), Document(text="# Title\n\nShort markdown body.\n")]
    parser = LoragNodeParser("markdown", chunk_size=120)
    nodes = IngestionPipeline(transformations=[parser]).run(documents=docs)
    assert len(nodes) > 2
    assert nodes[-1].metadata["header_path"] == "Title"
    index = VectorStoreIndex.from_documents(docs, transformations=[parser], embed_model=MockEmbedding(embed_dim=8))
    assert len(index.docstore.docs) == len(nodes)
    hits = index.as_retriever(similarity_top_k=2).retrieve("markdown body")
    assert len(hits) == 2


def test_semantic_with_llamaindex_embedding() -> None:
    parser = LoragNodeParser("semantic", chunk_size=200, embedder=MockEmbedding(embed_dim=8))
    nodes = parser.get_nodes_from_documents([Document(text=TEXT)])
    assert nodes and all(len(n.text) <= 200 for n in nodes)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown chunking method"):
        LoragNodeParser("pages")
    with pytest.raises(ValueError, match="needs an embedder"):
        LoragNodeParser("semantic")

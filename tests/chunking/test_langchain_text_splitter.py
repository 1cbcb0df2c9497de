"""LoragTextSplitter is a native LangChain TextSplitter with exact start_index and carried metadata."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from langchain_lorag import LoragTextSplitter
from tests.chunking.fakes import fake_embed

REPEATED = "Same words here. " * 30 + "\n\nA different ending paragraph. " * 3


def test_is_a_langchain_text_splitter() -> None:
    assert issubclass(LoragTextSplitter, TextSplitter)


@pytest.mark.parametrize("method", ["recursive", "sentence", "markdown", "semantic"])
def test_documents_carry_metadata_and_exact_start_index(method: str) -> None:
    extra = {"embedder": fake_embed} if method == "semantic" else {}
    overlap = 0 if method == "semantic" else 20
    splitter = LoragTextSplitter(method, chunk_size=80, chunk_overlap=overlap, add_start_index=True, **extra)
    source = Document(page_content=REPEATED, metadata={"source": "doc.md", "tags": ["a"]})
    docs = splitter.split_documents([source])
    assert len(docs) > 3
    for doc in docs:
        start = doc.metadata["start_index"]
        assert REPEATED[start : start + len(doc.page_content)] == doc.page_content
        assert doc.metadata["source"] == "doc.md"
        assert len(doc.page_content) <= 80
    starts = [d.metadata["start_index"] for d in docs]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    docs[0].metadata["tags"].append("changed")
    assert source.metadata["tags"] == ["a"], "metadata is copied, not shared"


def test_split_text_and_token_lengths(tiny_llm_dir: object) -> None:
    splitter = LoragTextSplitter("token", chunk_size=16, chunk_overlap=4, tokenizer=str(tiny_llm_dir))
    chunks = splitter.split_text(REPEATED)
    assert chunks and all(splitter._length_function(c) <= 16 for c in chunks)


def test_markdown_header_path_reaches_documents() -> None:
    text = "# Guide\n\nIntro.\n\n## Install\n\nRun pip.\n"
    docs = LoragTextSplitter("markdown", chunk_size=200).create_documents([text], [{"source": "g.md"}])
    assert [d.metadata["header_path"] for d in docs] == ["Guide", "Guide > Install"]


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown chunking method 'words'"):
        LoragTextSplitter("words")
    with pytest.raises(ValueError, match="chunk_overlap"):
        LoragTextSplitter(chunk_size=10, chunk_overlap=10)
    with pytest.raises(ValueError, match="empty text"):
        LoragTextSplitter().split_text("  \n")
    with pytest.raises(ValueError, match="2 metadatas for 1 texts"):
        LoragTextSplitter().create_documents(["x"], [{}, {}])

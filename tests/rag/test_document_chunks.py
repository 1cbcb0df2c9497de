"""How a document becomes chunks: exact offsets, Markdown sections, PDF pages, and ids that carry the file's hash."""

from __future__ import annotations

from pathlib import Path

from lorag.embedding import Embedder
from lorag.rag.document_chunks import chunk_document, default_splitters
from lorag.rag.loaders import SourceDocument


def test_chunks_keep_offsets_sections_pages_and_hashed_ids(tiny_st_dir: Path) -> None:
    splitters = default_splitters(Embedder(str(tiny_st_dir), device="cpu"), chunk_tokens=16)
    setup, run = "Install the package with pip. " * 6, "Start the server on port 8000. " * 6
    text = f"# Setup\n\n{setup}\n\n## Run\n\n{run}"
    markdown = SourceDocument("guide.md", text, "markdown", "ab" * 32)
    ids, texts, metas = chunk_document(markdown, splitters)
    assert len(ids) > 2 and len(set(ids)) == len(ids)
    assert all(i.startswith("guide.md#abababababab:") for i in ids)
    for chunk, meta in zip(texts, metas, strict=True):
        assert text[meta["start"] : meta["end"]] == chunk and meta["source"] == "guide.md" and "page" not in meta
    assert metas[0]["section"] == "Setup" and metas[-1]["section"] == "Setup > Run"

    pages = "First page words. " * 10 + "Second page words. " * 10
    pdf = SourceDocument("paper.pdf", pages, "pdf", "cd" * 32, page_starts=(0, 180))
    *_, pdf_metas = chunk_document(pdf, splitters)  # no splitter for "pdf": the text one
    assert [m["page"] for m in pdf_metas] == [1 if m["start"] < 180 else 2 for m in pdf_metas]
    assert {m["page"] for m in pdf_metas} == {1, 2} and "section" not in pdf_metas[0]

"""How ``DocumentIndex`` cuts a document into chunks: the default splitters, chunk ids and metadata.

Functions of the document and the splitters alone, so Ray workers (``lorag.rag.ray_sync``) chunk exactly as a local
sync does.
"""

from __future__ import annotations

from typing import Any

from lorag.chunking import Splitter, make_splitter
from lorag.embedding import Embedder
from lorag.rag.loaders import SourceDocument

#: Chunk size in the embedder's own tokens. 256 fills MiniLM's window; see benchmarks/results/chunking.md.
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_CHUNK_OVERLAP = 32


def default_splitters(embedder: Embedder, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> dict[str, Splitter]:
    """Markdown-aware splitting for Markdown (header paths become sections), recursive for text and PDF pages.

    Sizes are measured in the embedder's tokens and capped by its window, so no chunk is truncated when embedded.
    """
    size = min(chunk_tokens, embedder.max_seq_length - 2)
    overlap = min(DEFAULT_CHUNK_OVERLAP, size // 4)
    return {
        "markdown": make_splitter("markdown", chunk_size=size, chunk_overlap=overlap, tokenizer=embedder.tokenizer),
        "text": make_splitter("recursive", chunk_size=size, chunk_overlap=overlap, tokenizer=embedder.tokenizer),
    }


def chunk_id(doc: SourceDocument, index: int) -> str:
    """Ids carry the file's content hash, so a changed file's chunks never collide with its old ones."""
    return f"{doc.source}#{doc.sha256[:12]}:{index}"


def chunk_document(
    doc: SourceDocument, splitters: dict[str, Splitter]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Chunk one document: ids, texts and metadata (source, offsets, section or page)."""
    splitter = splitters.get(doc.kind) or splitters["text"]
    ids, texts, metas = [], [], []
    for chunk in splitter.split(doc.text, {"source": doc.source}):
        meta: dict[str, Any] = {"source": doc.source, "start": chunk.start, "end": chunk.end}
        section = chunk.metadata.get("header_path")
        if section:
            meta["section"] = section
        page = doc.page_at(chunk.start)
        if page is not None:
            meta["page"] = page
        ids.append(chunk_id(doc, chunk.index))
        texts.append(chunk.text)
        metas.append(meta)
    return ids, texts, metas

"""``LoragTextSplitter``: lorag's splitters as a native LangChain ``TextSplitter``, with exact ``start_index``."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from lorag.chunking import Chunk, Splitter, make_splitter


class LoragTextSplitter(TextSplitter):
    """Split texts and documents with any lorag chunking method.

    Unlike LangChain's own splitters, ``start_index`` comes from the splitter's exact offsets rather than from
    searching the chunk text in the document, so it stays right for repeated passages. Chunks are stripped of
    surrounding whitespace and ``document.page_content[start_index:start_index + len(chunk)] == chunk``.

    Args:
        method: ``recursive``, ``token``, ``sentence``, ``markdown`` or ``semantic``.
        chunk_size: maximum chunk length; default 256 tokens with a tokenizer, else 1000 characters.
        chunk_overlap: maximum length repeated between consecutive chunks; default ``chunk_size // 8``.
        tokenizer: ``None`` (characters), a model reference such as ``"minilm"``, or a ``transformers`` tokenizer.
        add_start_index: put each chunk's character offset in ``metadata["start_index"]``.
        **kwargs: the method's options (``preset``, ``overlap_sentences``, ``embedder``, ``threshold``,
            ``min_chunk_size``, ...); ``embedder`` may be any LangChain ``Embeddings``.

    Example:
        >>> splitter = LoragTextSplitter("recursive", chunk_size=40, add_start_index=True)
        >>> [d.metadata["start_index"] for d in splitter.create_documents(["One line.\\n\\nAnother line here."])]
        [0, 11]
    """

    def __init__(
        self,
        method: str = "recursive",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        tokenizer: Any = None,
        *,
        add_start_index: bool = False,
        **kwargs: Any,
    ) -> None:
        self.splitter: Splitter = make_splitter(method, chunk_size, chunk_overlap, tokenizer, **kwargs)
        super().__init__(
            chunk_size=self.splitter.chunk_size,
            chunk_overlap=self.splitter.chunk_overlap,
            length_function=self.splitter.length,
            add_start_index=add_start_index,
            strip_whitespace=True,
        )
        self.method = method

    @classmethod
    def from_huggingface_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> LoragTextSplitter:
        """Measure chunks in tokens of ``tokenizer`` (same as passing ``tokenizer=``)."""
        return cls(tokenizer=tokenizer, **kwargs)

    def split_text(self, text: str) -> list[str]:
        return self.splitter.split_text(text)

    def split_chunks(self, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        """lorag ``Chunk``s with offsets, token counts and metadata."""
        return self.splitter.split(text, metadata)

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        documents = []
        for i, text in enumerate(texts):
            base = metadatas[i] if metadatas else {}
            for chunk in self.splitter.split(text):
                metadata = {**copy.deepcopy(base), **chunk.metadata}
                if self._add_start_index:
                    metadata["start_index"] = chunk.start
                documents.append(Document(page_content=chunk.text, metadata=metadata))
        return documents

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        docs = list(documents)
        return self.create_documents([d.page_content for d in docs], [d.metadata for d in docs])

"""``LoragEmbedding``: a LlamaIndex ``BaseEmbedding`` over any sentence-transformers model via lorag's ``Embedder``."""

from __future__ import annotations

import asyncio

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict

from lorag.embedding.options import options_model

#: ``EmbedderOptions`` name -> the field name ``BaseEmbedding`` fixes.
RENAMED = {"model": "model_name", "batch_size": "embed_batch_size"}

_Options = options_model(RENAMED, base=BaseEmbedding)


class LoragEmbedding(_Options, BaseEmbedding):  # type: ignore[misc,valid-type]
    """Embeddings from a lorag model reference: a teacher (``minilm``, ``mpnet``), a distilled student directory
    (``lorag distill``), or any sentence-transformers model.

    Takes the options LangChain's ``LoragEmbeddings`` takes (``lorag.embedding.options.EmbedderOptions``), with
    ``model`` and ``batch_size`` under ``BaseEmbedding``'s names: ``model_name``, and ``embed_batch_size``, both
    LlamaIndex's batching and the model's batch size. ``embedder`` is the core ``lorag.embedding.Embedder``.

    Example:
        .. code-block:: python

            from llama_index.embeddings.lorag import LoragEmbedding

            embed_model = LoragEmbedding(model_name="minilm", backend="onnx")
            vector = embed_model.get_query_embedding("What is dense retrieval?")
    """

    model_config = ConfigDict(protected_namespaces=())

    @classmethod
    def class_name(cls) -> str:
        return "LoragEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.float_lists(self.embedder.embed_queries([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.float_lists(self.embedder.embed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.float_lists(self.embedder.embed_documents(texts))

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

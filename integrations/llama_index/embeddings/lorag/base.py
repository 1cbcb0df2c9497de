"""``LoragEmbedding``: a LlamaIndex ``BaseEmbedding`` over any sentence-transformers model via lorag's ``Embedder``."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, Field, PrivateAttr

from lorag.embedding.onnx_backend import Backend
from lorag.embedding.quantization import Precision


class LoragEmbedding(BaseEmbedding):
    """Embeddings from a lorag model reference: a teacher (``minilm``, ``mpnet``), a distilled student directory
    (``lorag distill``), or any sentence-transformers model.

    ``embed_batch_size`` is both LlamaIndex's batching and the model's batch size.

    Example:
        .. code-block:: python

            from llama_index.embeddings.lorag import LoragEmbedding

            embed_model = LoragEmbedding(model_name="minilm", backend="onnx")
            vector = embed_model.get_query_embedding("What is dense retrieval?")
    """

    model_name: str = Field(default="minilm", description="lorag short name, local directory or hub id.")
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Texts per batch.")
    device: str | None = Field(default=None, description="torch device; None lets sentence-transformers choose.")
    normalize: bool = Field(default=True, description="L2-normalise vectors (inner product = cosine).")
    query_prompt: str | None = Field(default=None, description="Prepended to queries.")
    document_prompt: str | None = Field(default=None, description="Prepended to documents (texts).")
    show_progress: bool = Field(default=False, description="Progress bar while embedding many texts.")
    precision: Precision = Field(
        default="float32", description="int8 codes (need calibration_texts) or binary signs as +1/-1 floats."
    )
    calibration_texts: list[str] | None = Field(
        default=None, description="Corpus sample fixing the int8 scales (precision int8, backend openvino)."
    )
    backend: Backend = Field(
        default="torch",
        description="onnx: int8 ONNX Runtime encoder; onnx-fp32: torch's vectors, lower latency; "
        "openvino: int8 calibrated on calibration_texts, fastest on CPU.",
    )
    cache_path: str | None = Field(default=None, description="SQLite embedding cache file.")
    trust_remote_code: bool = Field(default=False, description="Allow code shipped with hub models to run.")

    model_config = ConfigDict(protected_namespaces=())

    _embedder: Any = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from lorag.embedding import Embedder, EmbeddingCache

        self._embedder = Embedder(
            self.model_name,
            device=self.device,
            batch_size=self.embed_batch_size,
            normalize=self.normalize,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
            show_progress=self.show_progress,
            cache=EmbeddingCache(self.cache_path) if self.cache_path else None,
            trust_remote_code=self.trust_remote_code,
            precision=self.precision,
            calibration=self.calibration_texts,
            backend=self.backend,
        )

    @classmethod
    def class_name(cls) -> str:
        return "LoragEmbedding"

    @property
    def embedder(self) -> Any:
        """The core ``lorag.embedding.Embedder``."""
        return self._embedder

    def _floats(self, vectors: Any) -> list[Embedding]:
        from lorag.embedding.as_floats import as_float_lists

        return as_float_lists(vectors, self.precision, self._embedder.dimension)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._floats(self._embedder.embed_queries([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._floats(self._embedder.embed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._floats(self._embedder.embed_documents(texts))

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

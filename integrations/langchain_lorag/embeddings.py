"""``LoragEmbeddings``: LangChain embeddings over any sentence-transformers model, through lorag's ``Embedder``."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from lorag.embedding.onnx_backend import Backend
from lorag.embedding.quantization import Precision


class LoragEmbeddings(BaseModel, Embeddings):
    """Embeddings from a lorag model reference: a teacher (``minilm``, ``mpnet``), a distilled student directory
    (``lorag distill``), or any sentence-transformers model.

    Example:
        .. code-block:: python

            from langchain_lorag import LoragEmbeddings

            embeddings = LoragEmbeddings(model="minilm", backend="onnx")
            vector = embeddings.embed_query("What is dense retrieval?")
    """

    model: str = "minilm"
    """lorag short name, local directory or hub id (``lorag.models.resolve_model``)."""
    device: str | None = None
    """torch device; None lets sentence-transformers choose."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass."""
    normalize: bool = True
    """L2-normalise vectors (inner product = cosine)."""
    query_prompt: str | None = None
    """Prepended to queries (e.g. ``"query: "`` for E5-style models)."""
    document_prompt: str | None = None
    """Prepended to documents."""
    show_progress: bool = False
    """Progress bar while embedding many texts."""
    precision: Precision = "float32"
    """int8 codes (need ``calibration_texts``) or binary signs as +1/-1 floats; see ``lorag.embedding.as_floats``."""
    calibration_texts: list[str] | None = None
    """Texts fixing the int8 scales (a sample of the corpus): of ``precision="int8"`` and ``backend="openvino"``."""
    backend: Backend = "torch"
    """``onnx``: int8 ONNX Runtime encoder; ``onnx-fp32``: torch's vectors, lower latency (``lorag[onnx]``);
    ``openvino``: int8 calibrated on ``calibration_texts``, fastest on CPU (``lorag[openvino]``)."""
    cache_path: str | None = None
    """SQLite embedding cache file; texts embedded before with the same settings are not embedded again."""
    trust_remote_code: bool = False
    """Allow code shipped with hub models to run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _embedder: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        from lorag.embedding import Embedder, EmbeddingCache

        self._embedder = Embedder(
            self.model,
            device=self.device,
            batch_size=self.batch_size,
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

    @property
    def embedder(self) -> Any:
        """The core ``lorag.embedding.Embedder`` (settings, dimension, fingerprint)."""
        return self._embedder

    def _floats(self, vectors: Any) -> list[list[float]]:
        from lorag.embedding.as_floats import as_float_lists

        return as_float_lists(vectors, self.precision, self._embedder.dimension)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._floats(self._embedder.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._floats(self._embedder.embed_queries([text]))[0]

"""``LlamaIndexEmbedder``: any LlamaIndex ``BaseEmbedding`` (``LoragEmbedding``, OpenAI, HuggingFace...) as the
embedder of lorag's FAISS index. LlamaIndex embeddings do not state their dimension, so one probe embedding gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding


class LlamaIndexEmbedder:
    """A LlamaIndex ``BaseEmbedding`` seen as a lorag ``TextEmbedder`` (numpy arrays, a dimension and settings)."""

    def __init__(self, embed_model: BaseEmbedding) -> None:
        self.embed_model = embed_model
        self.dimension = len(embed_model.get_query_embedding("dimension probe"))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.embed_model.get_text_embedding_batch(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embed_model.get_query_embedding(text), dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        """What a saved index records and checks on load: the class, the dimension and the plain fields."""
        params = self.embed_model.model_dump(exclude={"callback_manager"})
        plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None}
        return {"llama_index_embedding": self.embed_model.class_name(), "dimension": self.dimension, **plain}

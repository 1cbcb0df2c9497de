"""``Embedder``: the one way lorag turns texts into vectors (retrievers, splitters, framework components)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding.cache import EmbeddingCache, text_key
from lorag.fingerprint import directory_fingerprint
from lorag.models import resolve_model


class Embedder:
    """Normalised, batched sentence embeddings from any sentence-transformers model.

    Args:
        model: a lorag short name (``minilm``, ``mpnet``), a local directory or a hub id (see ``lorag.models``).
        device: torch device; ``None`` lets sentence-transformers choose (CUDA when present).
        batch_size: texts per forward pass.
        normalize: L2-normalise vectors, so inner product equals cosine similarity.
        query_prompt: text prepended to queries (e.g. ``"query: "`` for E5-style models).
        document_prompt: text prepended to documents.
        show_progress: draw a progress bar while embedding many texts.
        cache: an ``EmbeddingCache``; texts already embedded with the same model and settings are not re-embedded.
        trust_remote_code: allow code shipped with the model to run (off by default).
        model_kwargs: passed to ``SentenceTransformer(...)``.
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        device: str | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        show_progress: bool = False,
        cache: EmbeddingCache | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        st = require("sentence_transformers", purpose="dense embeddings")
        self.model_name = model
        self.model_path = resolve_model(model)
        self.batch_size = batch_size
        self.normalize = normalize
        self.query_prompt = query_prompt or ""
        self.document_prompt = document_prompt or ""
        self.show_progress = show_progress
        self.cache = cache
        self.model = st.SentenceTransformer(
            self.model_path, device=device, trust_remote_code=trust_remote_code, **(model_kwargs or {})
        )
        self.fingerprint = directory_fingerprint(self.model_path)

    @property
    def dimension(self) -> int:
        dim = self.model.get_sentence_embedding_dimension()
        if dim is None:  # some static models only know it after one call
            dim = int(self._encode(["dimension probe"], "").shape[1])
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def settings(self) -> dict[str, Any]:
        """Everything that changes the vectors; saved next to indexes and compared on load."""
        return {
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "dimension": self.dimension,
            "normalize": self.normalize,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
        }

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents, shape ``(len(texts), dimension)``, float32."""
        return self._embed_cached(list(texts), self.document_prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed_cached(list(texts), self.query_prompt)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def _namespace(self, prompt: str) -> str:
        return json.dumps([self.fingerprint, self.normalize, prompt, self.max_seq_length])

    def _embed_cached(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.cache is None:
            return self._encode(texts, prompt)
        namespace = self._namespace(prompt)
        keys = [text_key(namespace, t) for t in texts]
        found = self.cache.get_many(keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
        if missing:
            fresh = self._encode([texts[i] for i in missing], prompt)
            new = {keys[i]: fresh[j] for j, i in enumerate(missing)}
            self.cache.put_many(new)
            found.update(new)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        vectors = self.model.encode(
            [prompt + t for t in texts] if prompt else texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            show_progress_bar=self.show_progress and len(texts) > self.batch_size,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

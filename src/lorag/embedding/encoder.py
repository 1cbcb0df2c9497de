"""``Embedder``: the one way lorag turns texts into vectors (retrievers, splitters, framework components)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding.cache import EmbeddingCache, text_key
from lorag.embedding.onnx_backend import (
    EXPORT_VERSION,
    Backend,
    ExportedEncoder,
    OnnxEncoder,
    check_backend,
    onnx_model_path,
)
from lorag.embedding.quantization import Precision, calibration_ranges, check_precision, quantize, ranges_fingerprint
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
        precision: ``float32`` (default), ``int8`` or ``binary``: what ``embed_documents`` / ``embed_queries``
            return (see ``lorag.embedding.quantization.quantize``); match the index with
            ``lorag.embedding.build_faiss_index``. The cache always holds float32.
        calibration: for ``int8``: per-dimension ranges (shape ``(2, d)``), float embeddings ``(n, d)``, or texts
            (embedded as documents) that fix the quantization scale; a sample of the corpus is the usual choice.
            With ``backend="openvino"`` it must be texts: they also calibrate the int8 encoder.
        backend: ``torch`` (default), ``onnx`` or ``onnx-fp32`` (``pip install "lorag[onnx]"``): the transformer
            exported once to ONNX and run in ONNX Runtime. ``onnx`` quantizes its weights to int8 (dynamic
            quantization: about 2x torch's throughput on CPU, cosine ~0.99 to torch's vectors); ``onnx-fp32`` keeps
            them (torch's vectors, about half the latency for a single query). ``openvino``
            (``pip install "lorag[openvino]"``): the export quantized to int8 by NNCF on the ``calibration`` texts
            and run by OpenVINO (about 3x torch's throughput, cosine ~0.99). Vectors of each backend are cached
            under their own key.
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
        precision: Precision = "float32",
        calibration: np.ndarray | Sequence[str] | None = None,
        backend: Backend = "torch",
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
        self.precision = check_precision(precision)
        self.backend = check_backend(backend)
        if self.precision == "int8" and calibration is None:
            raise ValueError("precision='int8' needs calibration= (ranges, embeddings or texts, e.g. corpus samples)")
        self.encoder_calibration: str | None = None  # names the texts that calibrated an openvino encoder
        self._exported = self._exported_encoder(calibration)
        self.ranges: np.ndarray | None = None
        if self.precision == "int8" and calibration is not None:  # float32 and binary vectors need no scale
            self.calibrate(calibration)

    def _exported_encoder(self, calibration: np.ndarray | Sequence[str] | None) -> ExportedEncoder | None:
        if self.backend == "torch":
            return None
        if self.backend == "openvino":
            from lorag.embedding.openvino_backend import OpenVinoEncoder, calibration_digest, openvino_model_dir

            if calibration is None or isinstance(calibration, (np.ndarray, str)):
                raise ValueError(
                    "backend='openvino' needs calibration= texts (a sample of your corpus, e.g. 100-300 texts): "
                    "they fix the int8 scales of the encoder"
                )
            texts = [str(t) for t in calibration]
            self.encoder_calibration = calibration_digest(texts)
            return OpenVinoEncoder(self.model, openvino_model_dir(self.model, self.fingerprint, texts))
        return OnnxEncoder(self.model, onnx_model_path(self.model, self.fingerprint, quantize=self.backend == "onnx"))

    def calibrate(self, calibration: np.ndarray | Sequence[str]) -> np.ndarray:
        """Fix the int8 scale from ranges ``(2, d)``, float embeddings ``(n, d)`` or texts; returns the ranges."""
        if isinstance(calibration, np.ndarray) and calibration.dtype.kind == "f":
            ranges = calibration_ranges(calibration)  # ranges given as (2, d) come back unchanged
        else:
            ranges = calibration_ranges(self._embed_cached([str(t) for t in calibration], self.document_prompt))
        if ranges.shape != (2, self.dimension):
            raise ValueError(f"calibration has dimension {ranges.shape[1]}, the model gives {self.dimension}")
        self.ranges = ranges
        return ranges

    @property
    def dimension(self) -> int:
        get_dimension = (
            getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        )
        dim = get_dimension()
        if dim is None:  # some static models only know it after one call
            dim = int(self._encode(["dimension probe"], "").shape[1])
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text the model reads; static-embedding models have no limit (``sys.maxsize``)."""
        length = self.model.max_seq_length
        return sys.maxsize if length is None or length == math.inf else int(length)

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
            "precision": self.precision,
            "calibration": ranges_fingerprint(self.ranges) if self.precision == "int8" else None,
            "backend": self._backend_setting(),
        }

    def _backend_setting(self) -> str:
        if self.backend == "onnx-fp32":  # torch's vectors (to float rounding): indexes built with either serve both
            return "torch"
        if self.backend == "openvino":  # its vectors depend on the texts that calibrated it
            return f"openvino:{self.encoder_calibration}"
        return self.backend

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents: ``(len(texts), dimension)`` float32 at the default precision (see ``precision``)."""
        return self.quantize(self._embed_cached(list(texts), self.document_prompt))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.quantize(self._embed_cached(list(texts), self.query_prompt))

    def quantize(self, vectors: np.ndarray) -> np.ndarray:
        """Float32 vectors from this model at this embedder's precision."""
        return quantize(vectors, self.precision, self.ranges)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def _namespace(self, prompt: str) -> str:
        key: list[Any] = [self.fingerprint, self.normalize, prompt, self.max_seq_length]
        if self.backend != "torch":  # torch keys stay as they were, so existing caches keep matching
            key += [self.backend, EXPORT_VERSION]  # a new export (other graph, other int8 rounding) is a new key
        if self.encoder_calibration is not None:
            key.append(self.encoder_calibration)
        return json.dumps(key)

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
        if self._exported is not None:
            return self._exported.encode(
                [prompt + t for t in texts] if prompt else texts,
                batch_size=self.batch_size,
                normalize=self.normalize,
                show_progress=self.show_progress and len(texts) > self.batch_size,
            )
        vectors = self.model.encode(
            [prompt + t for t in texts] if prompt else texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            show_progress_bar=self.show_progress and len(texts) > self.batch_size,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

"""ONNX Runtime backends for ``Embedder``: the transformer exported once, run as is or with int8 weights.

sentence-transformers' own ONNX backend (``backend="onnx"``, ``export_dynamic_quantized_onnx_model``) needs
``optimum``, whose releases pin transformers below the 5.x this project uses, so it cannot be installed next to it.
This module does the same steps with the packages that do install (``onnx``, ``onnxruntime``):
``torch.onnx.export`` of the Hugging Face encoder with eager attention (the SDPA graph of transformers 5 runs about
a quarter slower in ONNX Runtime, and int8 gains less on it), optionally
``onnxruntime.quantization.quantize_dynamic`` with per-channel int8 weights (the setting of sentence-transformers'
``avx512_vnni`` config; per-tensor scales cost too much accuracy on MiniLM), and a session whose token embeddings go
through the model's own pooling modules, so the pooling, normalisation and any Dense layers stay exactly those of the
sentence-transformers model.

Backends: ``onnx`` (int8 weights: fastest, cosine ~0.99 to torch's vectors) and ``onnx-fp32`` (float weights: the
same vectors as torch to float rounding, about twice as fast for one short query, where torch's per-call overhead
dominates).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from lorag._imports import require
from lorag.models import lorag_home

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-fp32", "openvino"]
BACKENDS: tuple[str, ...] = get_args(Backend)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Bumped when the export changes, so files exported by an older lorag are not reused.
EXPORT_VERSION = 2


def check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend  # type: ignore[return-value]


def _export(model: Any, target: Path, quantize: bool) -> None:
    torch = require("torch", purpose="ONNX export")
    require("onnxruntime", purpose="the ONNX backend")
    hf = model.transformers_model
    if hf is None:
        raise ValueError("the ONNX backend needs a model whose first module is a transformers encoder")
    sample = {k: v for k, v in model.preprocess(["an example sentence", "two"]).items() if k in _INPUTS}
    names = [k for k in _INPUTS if k in sample]

    class _Encoder(torch.nn.Module):  # type: ignore[name-defined,misc]  # positional inputs, fixed order
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *args: Any) -> Any:
            return self.hf(**dict(zip(names, args, strict=True))).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, _eager_attention(hf):
        plain = Path(tmp) / "model.onnx"
        axes = {k: {0: "batch", 1: "sequence"} for k in [*names, "token_embeddings"]}
        with torch.no_grad():
            torch.onnx.export(
                _Encoder().eval(),
                tuple(sample[k] for k in names),
                str(plain),
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        final = plain
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "model_qint8.onnx"
            quantize_dynamic(str(plain), str(final), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(final, target)  # atomic: a reader never sees half a file


@contextmanager
def _eager_attention(hf: Any) -> Iterator[None]:
    """Export the plain attention graph; the model's own setting is restored afterwards."""
    previous = hf.config._attn_implementation
    if previous != "eager":
        hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous != "eager":
            hf.set_attn_implementation(previous)


def onnx_model_path(model: Any, fingerprint: str, *, quantize: bool = True) -> Path:
    """The exported (and int8-quantized) ONNX file for ``model``, built once under ``$LORAG_HOME/onnx``."""
    name = "model_qint8.onnx" if quantize else "model.onnx"
    target = lorag_home() / "onnx" / fingerprint / f"export-v{EXPORT_VERSION}" / name
    if not target.is_file():
        logger.info("lorag: exporting %s to ONNX at %s (once)", fingerprint, target)
        _export(model, target, quantize)
    return target


class ExportedEncoder:
    """Runs an exported encoder (``_run``) and the model's remaining modules (pooling, Dense) in torch."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Token embeddings ``(batch, sequence, hidden)`` for the tokenizer's output."""
        raise NotImplementedError

    def encode(self, texts: list[str], *, batch_size: int, normalize: bool, show_progress: bool) -> np.ndarray:
        torch = require("torch", purpose="exported encoders")
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths together: less padding
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        tail = list(self.model)[1:]
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="Batches", disable=not show_progress):
            idx = order[start : start + batch_size]
            features = self.model.preprocess([texts[i] for i in idx])
            tokens = self._run({k: v.numpy() for k, v in features.items() if k in _INPUTS})
            features["token_embeddings"] = torch.from_numpy(tokens)
            with torch.no_grad():
                for module in tail:
                    features = module(features)
                emb = features["sentence_embedding"].float()
                if normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
            for row, i in zip(emb.numpy(), idx, strict=True):
                out[i] = row
        return np.stack(out).astype(np.float32, copy=False)


class OnnxEncoder(ExportedEncoder):
    """The exported encoder in ONNX Runtime."""

    def __init__(self, model: Any, onnx_path: Path) -> None:
        super().__init__(model)
        ort = require("onnxruntime", purpose="the ONNX backend")
        torch = require("torch", purpose="the ONNX backend")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # one thread budget, set once with torch's
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        result: np.ndarray = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
        return result

"""The ONNX backend: exported once, int8 weights, vectors close to torch's, cached under their own key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import Embedder, EmbeddingCache

pytest.importorskip("onnxruntime")

TEXTS = [f"text number {i}: dense retrieval embeds queries and documents" for i in range(5)] + ["short", "a b c"]


def test_onnx_int8_is_close_to_torch(teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    torch_vecs = Embedder(str(teacher_dir)).embed_documents(TEXTS)
    onnx = Embedder(str(teacher_dir), backend="onnx", batch_size=3)
    onnx_vecs = onnx.embed_documents(TEXTS)
    assert onnx_vecs.shape == torch_vecs.shape and onnx_vecs.dtype == np.float32
    assert np.all((onnx_vecs * torch_vecs).sum(axis=1) > 0.95)  # int8 weights: close, not equal
    assert list((tmp_path / "home" / "onnx").rglob("model_qint8.onnx"))
    assert onnx.settings()["backend"] == "onnx"


def test_onnx_vectors_are_cached_apart_from_torch(
    teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    torch_vecs = Embedder(str(teacher_dir), cache=cache).embed_documents(TEXTS)
    onnx_vecs = Embedder(str(teacher_dir), cache=cache, backend="onnx").embed_documents(TEXTS)
    assert len(cache) == 2 * len(TEXTS)
    assert not np.array_equal(torch_vecs, onnx_vecs)


def test_onnx_fp32_gives_torchs_vectors(teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    torch_vecs = Embedder(str(teacher_dir)).embed_queries(TEXTS)
    fp32 = Embedder(str(teacher_dir), backend="onnx-fp32", batch_size=3)
    np.testing.assert_allclose(fp32.embed_queries(TEXTS), torch_vecs, atol=1e-5)
    assert [p.name for p in (tmp_path / "home" / "onnx").rglob("*.onnx")] == ["model.onnx"]
    assert fp32.model.transformers_model.config._attn_implementation != "eager"  # the export restored it
    assert fp32.settings() == Embedder(str(teacher_dir)).settings()  # indexes built with torch load with onnx-fp32

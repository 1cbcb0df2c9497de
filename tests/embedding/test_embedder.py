"""The core Embedder: shapes, normalisation, prompts and the content-keyed cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import Embedder, EmbeddingCache
from lorag.fingerprint import directory_fingerprint as model_fingerprint


@pytest.fixture(scope="module")
def embedder(tiny_st_dir: Path) -> Embedder:
    return Embedder(str(tiny_st_dir), device="cpu")


def test_shapes_and_normalisation(embedder: Embedder) -> None:
    docs = embedder.embed_documents(["a fox", "a dog", "paris"])
    assert docs.shape == (3, embedder.dimension) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed_query("a fox").shape == (embedder.dimension,)
    assert embedder.embed_documents([]).shape == (0, embedder.dimension)


def test_cache_serves_repeats_without_encoding(tiny_st_dir: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    emb = Embedder(str(tiny_st_dir), device="cpu", cache=cache)
    first = emb.embed_documents(["alpha", "beta", "alpha"])
    assert len(cache) == 2
    calls: list[int] = []
    original = emb._encode
    emb._encode = lambda texts, prompt: (calls.append(len(texts)), original(texts, prompt))[1]  # type: ignore[method-assign]
    again = emb.embed_documents(["beta", "alpha", "gamma"])
    assert calls == [1]
    np.testing.assert_array_equal(again[1], first[0])
    np.testing.assert_array_equal(again[0], first[1])


def test_prompts_change_vectors_and_cache_keys(tiny_st_dir: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    plain = Embedder(str(tiny_st_dir), device="cpu", cache=cache)
    prompted = Embedder(str(tiny_st_dir), device="cpu", cache=cache, document_prompt="passage: ")
    a = plain.embed_documents(["the capital of france"])
    b = prompted.embed_documents(["the capital of france"])
    assert not np.allclose(a, b)
    assert len(cache) == 2


def test_fingerprint_follows_weight_content(tiny_st_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_st_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_st_dir)
    weights = next(copy.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_st_dir)


def test_bad_batch_size(tiny_st_dir: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be positive"):
        Embedder(str(tiny_st_dir), batch_size=0)

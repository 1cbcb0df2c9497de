"""Embedder precision: float32, int8 with a fixed calibration, packed binary; the FAISS index matches each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import Embedder, add_to_faiss_index, build_faiss_index, search_faiss_index

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "paris is the capital of france",
    "retrieval augmented generation answers questions",
    "lora adapters add low-rank updates",
    "bm25 ranks documents by term frequency",
    "dense retrieval embeds queries and documents",
]


def test_int8_uses_the_calibration_ranges_for_every_call(teacher_dir: Path) -> None:
    emb = Embedder(str(teacher_dir), precision="int8", calibration=TEXTS)
    together = emb.embed_documents(TEXTS)
    one_by_one = np.concatenate([emb.embed_documents([t]) for t in TEXTS])
    assert together.dtype == np.int8 and together.shape == (6, emb.dimension)
    # the scale does not depend on the batch: at most one step apart (float noise between batch compositions)
    assert np.abs(together.astype(int) - one_by_one.astype(int)).max() <= 1
    assert emb.settings()["calibration"] is not None


def test_binary_packs_sign_bits(teacher_dir: Path) -> None:
    emb = Embedder(str(teacher_dir), precision="binary")
    floats = Embedder(str(teacher_dir)).embed_documents(TEXTS)
    packed = emb.embed_documents(TEXTS)
    assert packed.dtype == np.uint8 and packed.shape == (6, emb.dimension // 8)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1)[:, : emb.dimension], (floats > 0).astype(np.uint8))


@pytest.mark.parametrize("precision", ["float32", "int8", "binary"])
def test_matching_faiss_index_finds_each_text_first(teacher_dir: Path, precision: str) -> None:
    emb = Embedder(str(teacher_dir), precision=precision, calibration=TEXTS if precision == "int8" else None)
    index = build_faiss_index(precision, emb.dimension)
    docs = emb.embed_documents(TEXTS)
    add_to_faiss_index(index, docs, precision)
    scores, ids = search_faiss_index(index, emb.embed_queries(TEXTS), 3, precision)
    if precision == "binary":  # the tiny model's 32 sign bits can coincide: then any text with the same code ties
        assert all(np.array_equal(docs[top], docs[i]) for i, top in enumerate(ids[:, 0]))
        assert np.all(scores[:, 0] == 0)  # Hamming distance 0 to the text itself (or its exact twin)
    else:
        assert ids[:, 0].tolist() == list(range(len(TEXTS)))
    assert np.all(np.diff(scores, axis=1) <= 0)  # larger is better at every precision
    _, empty_ids = search_faiss_index(index, emb.embed_queries(TEXTS[:1]), 0, precision)
    assert empty_ids.shape == (1, 0)


def test_bad_precision_and_missing_calibration(teacher_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown precision 'int4'; choose one of float32, int8, binary"):
        Embedder(str(teacher_dir), precision="int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs calibration"):
        Embedder(str(teacher_dir), precision="int8")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Embedder(str(teacher_dir), backend="tensorrt")  # type: ignore[arg-type]

"""The FAISS layer's structures and search parameters: HNSW and IVF at float32, a selector applied inside the search."""

from __future__ import annotations

import numpy as np
import pytest

from lorag.embedding.faiss_index import add_to_faiss_index, build_faiss_index, search_faiss_index, search_params

faiss = pytest.importorskip("faiss")


def _vectors(n: int, d: int = 8) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_each_structure_finds_each_vector_first_and_a_selector_filters(index_type: str) -> None:
    docs = _vectors(20)
    index = build_faiss_index("float32", 8, index_type=index_type, nlist=2)
    if not index.is_trained:
        index.train(docs)
    add_to_faiss_index(index, docs, "float32")
    everywhere = search_params(index_type, ef_search=64, nprobe=2)
    _, ids = search_faiss_index(index, docs, 1, "float32", params=everywhere)
    assert ids[:, 0].tolist() == list(range(20))
    allowed = np.arange(0, 20, 2, dtype=np.int64)
    only_even = search_params(index_type, selector=faiss.IDSelectorBatch(allowed), nprobe=2)
    _, ids = search_faiss_index(index, docs[1:2], 5, "float32", params=only_even)
    assert set(ids[0][ids[0] >= 0].tolist()) <= set(allowed.tolist())


def test_structures_other_than_flat_hold_float32_only_and_ivf_needs_cells() -> None:
    with pytest.raises(ValueError, match="holds float32 vectors only, not int8"):
        build_faiss_index("int8", 8, index_type="hnsw")
    with pytest.raises(ValueError, match="needs a positive nlist"):
        build_faiss_index("float32", 8, index_type="ivf")
    with pytest.raises(ValueError, match="unknown index_type 'lsh'"):
        build_faiss_index("float32", 8, index_type="lsh")

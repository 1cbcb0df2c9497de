"""RRF and convex fusion give the published formulas' values."""

from __future__ import annotations

import pytest

from lorag.retrieval import fusion


def test_rrf_weighted_with_ranks_from_one() -> None:
    fused = fusion.rrf({"bm25": {"a": 9.0, "b": 5.0}, "dense": {"b": 0.9, "c": 0.1}}, {"bm25": 2.0, "dense": 1.0}, k=60)
    assert fused["a"] == pytest.approx(2 / 61)
    assert fused["b"] == pytest.approx(2 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)


def test_convex_minmax_missing_documents_get_the_floor() -> None:
    fused = fusion.convex(
        {"bm25": {"a": 10.0, "b": 6.0, "c": 2.0}, "dense": {"b": 0.8, "d": 0.4}}, {"dense": 0.25, "bm25": 0.75}
    )
    assert fused["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.0)
    assert fused["b"] == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    assert fused["c"] == pytest.approx(0.0)
    assert fused["d"] == pytest.approx(0.0)


def test_convex_zscore() -> None:
    fused = fusion.convex({"bm25": {"a": 3.0, "b": 1.0}}, {"bm25": 1.0}, normalization="zscore")
    assert fused == pytest.approx({"a": 1.0, "b": -1.0})


def test_unknown_normalization() -> None:
    with pytest.raises(ValueError, match=r"choose one of \['minmax', 'zscore'\]"):
        fusion.convex({"bm25": {"a": 1.0}}, {"bm25": 1.0}, normalization="softmax")

"""Semantic splitter: breaks at topic shifts with every threshold rule, within hard min and max sizes."""

from __future__ import annotations

import numpy as np
import pytest

from lorag.chunking import THRESHOLDS, SemanticSplitter
from lorag.chunking.semantic import breakpoints
from tests.chunking.fakes import fake_embed

CATS = ["Cats purr softly.", "Cats chase mice.", "Cats sleep a lot.", "Cats like milk."]
STOCKS = ["Stocks fell sharply.", "Bonds rose today.", "Markets closed lower.", "Investors sold shares."]


def topic_embed(texts: list[str]) -> np.ndarray:
    """Two-dimensional topic vectors: how cat-like versus market-like each text is."""
    return np.array(
        [[t.count("Cats") + 0.1, sum(t.count(w) for w in ("Stocks", "Bonds", "Markets", "Investors"))] for t in texts],
        dtype=np.float32,
    )


@pytest.mark.parametrize("threshold", sorted(THRESHOLDS))
def test_breaks_at_the_topic_shift(threshold: str) -> None:
    text = " ".join(CATS + STOCKS)
    amount = {"percentile": 80, "standard_deviation": 1.0, "interquartile": 0.5, "gradient": 50}[threshold]
    chunks = SemanticSplitter(topic_embed, 1000, threshold=threshold, threshold_amount=amount, buffer_size=0).split(
        text
    )
    boundaries = {c.end for c in chunks}
    assert text.index(CATS[-1]) + len(CATS[-1]) in boundaries, [c.text for c in chunks]


def test_hard_maximum_and_minimum() -> None:
    text = " ".join((CATS + STOCKS) * 5)
    splitter = SemanticSplitter(fake_embed, 120, min_chunk_size=60, threshold_amount=50, buffer_size=0)
    chunks = splitter.split(text)
    assert all(len(c) <= 120 for c in chunks)
    assert all(len(c) >= 60 for c in chunks[:-1])


def test_breakpoint_rules_on_known_distances() -> None:
    d = np.array([0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert breakpoints(d, "percentile", 90).tolist() == [2]
    assert breakpoints(d, "standard_deviation", 2).tolist() == [2]
    assert breakpoints(d, "interquartile", 1.5).tolist() == [2]
    with pytest.raises(ValueError, match="choose one of"):
        breakpoints(d, "median")


def test_uses_lorag_embedder(tiny_st_dir: object) -> None:
    from lorag.embedding import Embedder

    chunks = SemanticSplitter(Embedder(str(tiny_st_dir)), 80).split(" ".join(CATS + STOCKS))
    assert chunks and all(len(c) <= 80 for c in chunks)

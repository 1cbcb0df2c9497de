"""Rank fusion as pure functions: weighted reciprocal rank fusion and convex combination of normalised scores.

Each takes, per component (``"bm25"``, ``"dense"``...), that component's candidates as ``{doc_id: score}`` in rank
order, and returns ``{doc_id: fused_score}``.

- ``rrf``: Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms Condorcet and individual rank learning
  methods" (SIGIR 2009): ``sum_c w_c / (k + rank_c(d))`` with ranks from 1 and ``k = 60``.
- ``convex``: Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval" (ACM TOIS 2023):
  ``alpha * norm(dense) + (1 - alpha) * norm(lexical)``, scores min-max or z-score normalised over each component's
  candidates. A document a component did not return gets that component's lowest normalised value (0 with min-max),
  i.e. it is treated as no better than the worst candidate seen.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FUSIONS = ("rrf", "convex")
NORMALIZATIONS = ("minmax", "zscore")

Ranking = Mapping[str, float]


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {list(FUSIONS)}")
    return fusion


def rrf(
    rankings: Mapping[str, Ranking], weights: Mapping[str, float] | None = None, k: float = 60.0
) -> dict[str, float]:
    """Weighted reciprocal rank fusion; each ranking's dict order is its rank order (rank 1 first)."""
    fused: dict[str, float] = {}
    for name, ranking in rankings.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
    return fused


def normalize(scores: np.ndarray, method: str) -> np.ndarray:
    """Min-max to [0, 1] or z-score; constant score lists map to all ones (min-max) or zeros (z-score)."""
    if method == "minmax":
        lo, hi = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    if method == "zscore":
        std = float(scores.std())
        return np.zeros_like(scores) if std == 0 else (scores - scores.mean()) / std
    raise ValueError(f"unknown normalization {method!r}; choose one of {list(NORMALIZATIONS)}")


def convex(
    rankings: Mapping[str, Ranking], weights: Mapping[str, float], normalization: str = "minmax"
) -> dict[str, float]:
    """Weighted sum of per-component normalised scores (weights usually ``{"dense": a, "bm25": 1 - a}``)."""
    normed: dict[str, dict[str, float]] = {}
    floors: dict[str, float] = {}
    for name, ranking in rankings.items():
        if not ranking:
            continue
        values = normalize(np.fromiter(ranking.values(), dtype=np.float64, count=len(ranking)), normalization)
        normed[name] = dict(zip(ranking.keys(), values.tolist(), strict=True))
        floors[name] = float(values.min())
    all_ids = {doc_id for ranking in normed.values() for doc_id in ranking}
    fused = dict.fromkeys(all_ids, 0.0)
    for name, values_by_id in normed.items():
        w = float(weights.get(name, 0.0))
        floor = floors[name]
        for doc_id in all_ids:
            fused[doc_id] += w * values_by_id.get(doc_id, floor)
    return fused

"""BEIR's retrieval metrics through pytrec_eval (trec_eval's own code) and per-query latency percentiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lorag._imports import require


@dataclass(frozen=True)
class RetrievalReport:
    """Mean metrics over queries (BEIR conventions) and per-query latency in milliseconds."""

    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    latency_ms_p50: float
    latency_ms_p95: float
    queries: int

    def to_json(self) -> dict[str, float]:
        """The public JSON keys of ``lorag eval --json``."""
        return {
            "ndcg@10": self.ndcg_at_10,
            "recall@100": self.recall_at_100,
            "mrr@10": self.mrr_at_10,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
        }

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def latency_percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 of per-query latencies, in milliseconds."""
    if not len(seconds):
        return 0.0, 0.0
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    latencies_s: Sequence[float] = (),
) -> RetrievalReport:
    """Score a run ``{query_id: {doc_id: score}}`` against qrels; queries missing from the run score 0.

    MRR@10 is trec_eval's reciprocal rank over each query's 10 best documents (BEIR's ``MRR@10``).
    """
    pytrec_eval = require("pytrec_eval", purpose="retrieval metrics")
    qrels_ = {q: {d: int(r) for d, r in rels.items()} for q, rels in qrels.items()}
    run_ = {q: {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:10]) for q, docs in run_.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels_, {"ndcg_cut.10", "recall.100"}).evaluate(run_)
    cut = pytrec_eval.RelevanceEvaluator(qrels_, {"recip_rank"}).evaluate(top10)
    n = len(qrels_)

    def mean(results: Mapping[str, Mapping[str, float]], key: str) -> float:
        return float(sum(results.get(q, {}).get(key, 0.0) for q in qrels_) / n) if n else 0.0

    p50, p95 = latency_percentiles(latencies_s)
    return RetrievalReport(
        ndcg_at_10=mean(full, "ndcg_cut_10"),
        recall_at_100=mean(full, "recall_100"),
        mrr_at_10=mean(cut, "recip_rank"),
        latency_ms_p50=p50,
        latency_ms_p95=p95,
        queries=n,
    )

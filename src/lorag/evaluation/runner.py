"""Run a retriever over a dataset's queries, one at a time, timing each; then score the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from lorag.evaluation.beir import BeirDataset
from lorag.evaluation.metrics import RetrievalReport, evaluate_run

#: A retriever seen by the evaluator: query text -> ``(doc_id, score)`` pairs, best first.
SearchFn = Callable[[str], Iterable[tuple[str, float]]]


def run_queries(dataset: BeirDataset, search: SearchFn) -> tuple[dict[str, dict[str, float]], list[float]]:
    """The run ``{query_id: {doc_id: score}}`` and each query's wall-clock latency in seconds."""
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in dataset.queries.items():
        start = time.perf_counter()
        results = list(search(text))
        latencies.append(time.perf_counter() - start)
        # Scores only order documents for pytrec_eval; strictly decreasing ranks keep our order on score ties.
        n = len(results)
        run[qid] = {doc_id: float(n - i) for i, (doc_id, _score) in enumerate(results)}
    return run, latencies


def evaluate_retriever(dataset: BeirDataset, search: SearchFn) -> RetrievalReport:
    """nDCG@10, Recall@100, MRR@10 and latency p50/p95 of ``search`` on every query of ``dataset``."""
    run, latencies = run_queries(dataset, search)
    return evaluate_run(dataset.qrels, run, latencies)

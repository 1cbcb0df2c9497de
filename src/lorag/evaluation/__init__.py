"""Retrieval evaluation: a BEIR-format loader and BEIR's metrics (pytrec_eval) with per-query latency."""

from lorag.evaluation.beir import BeirDataset, load_beir
from lorag.evaluation.metrics import RetrievalReport, evaluate_run, latency_percentiles
from lorag.evaluation.runner import SearchFn, evaluate_retriever, run_queries

__all__ = [
    "BeirDataset",
    "RetrievalReport",
    "SearchFn",
    "evaluate_retriever",
    "evaluate_run",
    "latency_percentiles",
    "load_beir",
    "run_queries",
]

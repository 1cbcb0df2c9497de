"""Retrieval evaluation: a BEIR-format loader and BEIR's metrics (pytrec_eval) with per-query latency."""

from lorag.evaluation.beir import BeirDataset, load_beir
from lorag.evaluation.metrics import RetrievalReport, evaluate_run, latency_percentiles

__all__ = ["BeirDataset", "RetrievalReport", "evaluate_run", "latency_percentiles", "load_beir"]

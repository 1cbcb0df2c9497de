"""Retrieval evaluation (a BEIR-format loader and BEIR's metrics with per-query latency) and answer evaluation of a
RAG pipeline on questions with gold answers (``lorag eval-rag``)."""

from lorag.evaluation.answers import (
    QAPrediction,
    QAQuestion,
    contains_answer,
    exact_match,
    f1_score,
    normalize_answer,
    score_answers,
    strip_citations,
)
from lorag.evaluation.beir import BeirDataset, load_beir
from lorag.evaluation.metrics import RetrievalReport, evaluate_run, latency_percentiles
from lorag.evaluation.qa_questions import QuestionsFileError, load_questions
from lorag.evaluation.rag_eval import RagEvalReport, evaluate_rag
from lorag.evaluation.runner import SearchFn, evaluate_retriever, run_queries

__all__ = [
    "BeirDataset",
    "QAPrediction",
    "QAQuestion",
    "QuestionsFileError",
    "RagEvalReport",
    "RetrievalReport",
    "SearchFn",
    "contains_answer",
    "evaluate_rag",
    "evaluate_retriever",
    "evaluate_run",
    "exact_match",
    "f1_score",
    "latency_percentiles",
    "load_beir",
    "load_questions",
    "normalize_answer",
    "run_queries",
    "score_answers",
    "strip_citations",
]

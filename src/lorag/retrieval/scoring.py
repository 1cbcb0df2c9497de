"""Sparse scoring as pure functions over arrays: one IDF and one term-frequency function per BM25 variant, and
TF-IDF's two weighting functions (``tfidf_idf``, ``tfidf_tf``).

``okapi``, ``bm25l`` and ``bm25plus`` follow rank-bm25 (``rank_bm25.py``, after Trotman, Puurula and Burgess,
"Improvements to BM25 and Language Models Examined", ADCS 2014) formula for formula, including Okapi's floor of
``epsilon * mean(idf)`` on negative IDFs and BM25L's extra factor of the raw term frequency, so scores match it.
``lucene`` is Lucene's BM25Similarity since 8.0 (Robertson-Sparck Jones IDF plus one inside the log, no ``k1 + 1``).

Each term-frequency function gives the contribution of a term to a document that *contains* it. BM25+ also adds
``idf * delta`` to every document for every query term; ``query_constant`` returns that part, the same for all
documents, so the index can stay sparse.

TF-IDF follows scikit-learn's ``TfidfTransformer`` (``sklearn/feature_extraction/text.py``) operation for operation, so
the weights are its weights to the last bit: ``idf = ln((n + s) / (df + s)) + 1`` with ``s = 1`` under ``smooth_idf``
(as if one extra document held every term) and ``tf = 1 + ln(tf)`` under ``sublinear_tf`` (Manning, Raghavan and
Schuetze, *Introduction to Information Retrieval*, 2008, section 6.4.1).
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("lucene", "okapi", "bm25l", "bm25plus")

#: rank-bm25's defaults for delta per variant (unused by the others).
DEFAULT_DELTA = {"bm25l": 0.5, "bm25plus": 1.0}


def check_variant(method: str) -> str:
    if method not in VARIANTS:
        raise ValueError(f"unknown BM25 method {method!r}; choose one of {list(VARIANTS)}")
    return method


def idf(method: str, doc_freq: np.ndarray, n_docs: int, epsilon: float = 0.25) -> np.ndarray:
    """IDF per term from document frequencies (all ``>= 1``) and the number of documents."""
    df = doc_freq.astype(np.float64)
    n = float(n_docs)
    if method == "okapi":
        raw = np.log(n - df + 0.5) - np.log(df + 0.5)
        if raw.size:
            raw = np.where(raw < 0, epsilon * raw.mean(), raw)
        return raw
    if method == "bm25l":
        return np.log(n + 1.0) - np.log(df + 0.5)
    if method == "bm25plus":
        return np.log((n + 1.0) / df)
    if method == "lucene":
        return np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    raise ValueError(f"unknown BM25 method {method!r}; choose one of {list(VARIANTS)}")


def term_scores(
    method: str,
    tf: np.ndarray,
    doc_len: np.ndarray,
    avgdl: float,
    term_idf: np.ndarray,
    *,
    k1: float,
    b: float,
    delta: float,
) -> np.ndarray:
    """Score of each (term, document) posting from its term frequency, document length and the term's IDF."""
    tf = tf.astype(np.float64)
    norm = 1.0 - b + b * doc_len.astype(np.float64) / (avgdl if avgdl > 0 else 1.0)
    if method == "okapi":
        return term_idf * (tf * (k1 + 1.0) / (tf + k1 * norm))
    if method == "bm25l":
        ctd = tf / norm
        return term_idf * tf * (k1 + 1.0) * (ctd + delta) / (k1 + ctd + delta)
    if method == "bm25plus":
        return term_idf * ((tf * (k1 + 1.0)) / (k1 * norm + tf))
    if method == "lucene":
        return term_idf * (tf / (tf + k1 * norm))
    raise ValueError(f"unknown BM25 method {method!r}; choose one of {list(VARIANTS)}")


def query_constant(method: str, query_idf: np.ndarray, delta: float) -> float:
    """The score every document gets whatever it contains (non-zero only for BM25+)."""
    if method == "bm25plus":
        return float(np.sum(query_idf * delta))
    return 0.0


def tfidf_idf(doc_freq: np.ndarray, n_docs: int, *, smooth: bool) -> np.ndarray:
    """TF-IDF's IDF per term (``>= 1``, so every weight is positive) from document frequencies."""
    s = float(smooth)
    return np.log((float(n_docs) + s) / (doc_freq.astype(np.float64) + s)) + 1.0


def tfidf_tf(tf: np.ndarray, *, sublinear: bool) -> np.ndarray:
    """TF-IDF's term-frequency factor of raw counts (``>= 1``): the count itself, or ``1 + ln(count)``."""
    tf = tf.astype(np.float64)
    return np.log(tf) + 1.0 if sublinear else tf

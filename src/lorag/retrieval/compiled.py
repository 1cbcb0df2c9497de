"""BM25's query loop compiled with numba, used when ``numba`` is installed (``pip install "lorag[fast]"``).

The numpy path costs about twelve array calls per query (gather, bincount, candidates, a partition over every
candidate, sorts), which on a 5,000-document corpus is most of a query's time. Compiled, one pass adds each posting to
its document's sum and records the documents it touches; a 256-bucket histogram of the candidates' scores then finds
the bucket holding the k-th best score, and only the documents from that bucket up are sorted exactly. The result is
the numpy path's: the same sums added in the same order (term by term), best score first, ties by row (tested
against it). bm25s offers numba for the same reason.
"""

from __future__ import annotations

import numpy as np

from lorag._imports import require

numba = require("numba", purpose="compiled BM25 queries")

_BUCKETS = 256


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]  # numba has no type information
def top_k(
    term_indptr: np.ndarray,
    post_docs: np.ndarray,
    post_scores: np.ndarray,
    term_ids: np.ndarray,
    n_docs: int,
    k: int,
    mask: np.ndarray,
    use_mask: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best documents containing a query term (kept by ``mask`` when ``use_mask``)."""
    total = 0
    for t in term_ids:
        total += term_indptr[t + 1] - term_indptr[t]
    summed = np.zeros(n_docs)
    seen = np.zeros(n_docs, dtype=np.bool_)
    touched = np.empty(total, dtype=np.int64)
    n = 0
    for t in term_ids:
        for p in range(term_indptr[t], term_indptr[t + 1]):
            doc = post_docs[p]
            summed[doc] += post_scores[p]
            if not seen[doc]:
                seen[doc] = True
                touched[n] = doc
                n += 1
    rows = np.empty(n, dtype=np.int64)
    m = 0
    top, low = -np.inf, np.inf
    for i in range(n):
        doc = touched[i]
        if not use_mask or mask[doc]:
            rows[m] = doc
            m += 1
            top = max(top, summed[doc])
            low = min(low, summed[doc])
    rows = rows[:m]
    if m > k and top > low:
        # Bucket indices grow with the score, so the bucket where the count from the top first reaches k holds the
        # k-th best score: every document from that bucket up is kept (ties at the cut included).
        width = (top - low) / _BUCKETS
        counts = np.zeros(_BUCKETS + 1, dtype=np.int64)
        for i in range(m):
            counts[int((summed[rows[i]] - low) / width)] += 1
        cut = _BUCKETS
        kept = counts[cut]
        while kept < k:
            cut -= 1
            kept += counts[cut]
        keep = np.empty(kept, dtype=np.int64)
        j = 0
        for i in range(m):
            if int((summed[rows[i]] - low) / width) >= cut:
                keep[j] = rows[i]
                j += 1
        rows = keep[:j]
    rows = np.sort(rows)  # row order first: the stable sort by score then breaks ties by row
    scores = summed[rows]
    order = np.argsort(-scores, kind="mergesort")[:k]
    return rows[order], scores[order]

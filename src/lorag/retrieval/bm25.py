"""``BM25Index``: BM25 over precomputed per-posting scores, so a query is a gather, a bincount and a partial sort.

As in bm25s, every (term, document) score is computed at build time and stored term-major (CSC-like arrays
``term_indptr`` / ``post_docs`` / ``post_scores``); a query concatenates the postings of its tokens and sums them per
document with ``np.bincount``. Repeated query tokens are summed twice, as rank-bm25 does. Only documents that contain at
least one query token are candidates, then ``np.argpartition`` takes the top k among them. With numba installed
(``lorag[fast]``) the same steps run compiled in ``lorag.retrieval.compiled``, with the same results.

Adding or deleting documents changes the corpus statistics (N, average length, document frequencies) and so every
score: the raw term counts are kept and the postings are recomputed, which is a few vectorised passes over the
non-zeros (milliseconds for thousands of documents).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from lorag.retrieval import scoring
from lorag.retrieval._locking import synchronized
from lorag.retrieval.documents import MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.term_counts import TermCountIndex, top_rows
from lorag.retrieval.tokenization import TextTokenizer

logger = logging.getLogger(__name__)

KIND = "lorag.bm25"
_EMPTY = np.zeros(0, dtype=np.int64), np.zeros(0)
_NO_MASK = np.zeros(0, dtype=bool)

try:  # the compiled query loop when numba is installed (lorag[fast]); the numpy path below gives the same results
    from lorag.retrieval import compiled
except ImportError:
    compiled = None  # type: ignore[assignment]


class BM25Index(TermCountIndex):
    """A BM25 index over documents with ids and metadata (sibling: ``TfidfIndex``; documents, counts, adding,
    deleting and persistence come from ``TermCountIndex``).

    Args:
        method: ``"lucene"`` (default, as Lucene and bm25s), ``"okapi"``, ``"bm25l"`` or ``"bm25plus"`` (the last
            three exactly as rank-bm25).
        k1: term-frequency saturation.
        b: document-length normalisation.
        delta: BM25L/BM25+ lower bound (rank-bm25's defaults, 0.5 and 1.0, when ``None``).
        epsilon: Okapi's IDF floor, as a fraction of the mean IDF.
        tokenizer: anything with ``tokenize(text)`` and ``settings()``; the default ``Tokenizer()`` lowercases, drops
            English stopwords and stems.
    """

    KIND = KIND
    SAVE_LENGTHS = True
    SETTINGS = ("method", "k1", "b", "delta", "epsilon")

    def __init__(
        self,
        method: str = "lucene",
        *,
        k1: float = 1.5,
        b: float = 0.75,
        delta: float | None = None,
        epsilon: float = 0.25,
        tokenizer: TextTokenizer | None = None,
    ) -> None:
        self.method = scoring.check_variant(method)
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = float(k1)
        self.b = float(b)
        self.delta = float(scoring.DEFAULT_DELTA.get(method, 0.0) if delta is None else delta)
        self.epsilon = float(epsilon)
        super().__init__(tokenizer)

    def term_idf(self, terms: Sequence[str]) -> list[float | None]:
        """Each term's IDF here (None for a term no document holds): how rare, so how telling, a word is in this
        corpus (``lorag.rag.answerability`` weighs a question's words by it)."""
        with self._lock:
            return [None if (i := self.vocab.get(t)) is None else float(self._idf[i]) for t in terms]

    def _rebuild(self) -> None:
        """Recompute IDFs and every posting's score from the raw counts."""
        n_docs = self.counts.n_docs
        n_terms = len(self.vocab)
        if n_docs == 0 or n_terms == 0:
            self._idf = np.zeros(n_terms)
            self._term_indptr = np.zeros(n_terms + 1, dtype=np.int64)
            self._term_bounds: list[int] = self._term_indptr.tolist()
            self._post_docs = np.zeros(0, dtype=np.int32)
            self._post_scores = np.zeros(0)
            self._positive = True
            return
        by_term = self.counts.matrix().tocsc()
        by_term.sort_indices()
        doc_freq = np.diff(by_term.indptr)
        self._idf = scoring.idf(self.method, doc_freq, n_docs, self.epsilon)
        doc_len = self.counts.lengths
        post_terms = np.repeat(np.arange(n_terms), doc_freq)
        self._post_docs = by_term.indices.astype(np.int32)
        self._post_scores = scoring.term_scores(
            self.method,
            by_term.data,
            doc_len[self._post_docs],
            float(doc_len.sum()) / n_docs,
            self._idf[post_terms],
            k1=self.k1,
            b=self.b,
            delta=self.delta,
        )
        self._term_indptr = by_term.indptr.astype(np.int64)
        self._term_bounds = self._term_indptr.tolist()  # Python ints slice arrays faster than numpy's
        # With every posting positive (all IDFs > 0), "score > 0" is exactly "contains a query token".
        self._positive = bool((self._post_scores > 0).all())

    # ----------------------------------------------------------------------------------------------------- querying
    def _token_ids(self, tokens: Sequence[str]) -> list[int]:
        vocab = self.vocab
        return [vocab[t] for t in tokens if t in vocab]

    @synchronized
    def scores_for_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """The score of every document (row order) for an already tokenized query, as rank-bm25's ``get_scores``."""
        scores = np.zeros(len(self.docs))
        tids = self._token_ids(tokens)
        if tids:
            docs, vals = self._gather(tids)
            scores += np.bincount(docs, weights=vals, minlength=len(self.docs))
        scores += scoring.query_constant(self.method, self._idf[tids], self.delta)
        return scores

    def _gather(self, tids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        ptr = self._term_bounds
        if len(tids) == 1:
            lo, hi = ptr[tids[0]], ptr[tids[0] + 1]
            return self._post_docs[lo:hi], self._post_scores[lo:hi]
        docs = np.concatenate([self._post_docs[ptr[t] : ptr[t + 1]] for t in tids])
        vals = np.concatenate([self._post_scores[ptr[t] : ptr[t + 1]] for t in tids])
        return docs, vals

    @synchronized
    def ranking(
        self, query: str, k: int, filter: MetadataFilter | None = None, *, exact_for: Sequence[str] = ()
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The top ``k`` as ``{id: score}`` in rank order (no hit objects: the hybrid's fast path), and the exact
        score of each id in ``exact_for`` (one more gather over the same postings)."""
        check_query(query)
        tokens = self.tokenizer.tokenize(query)
        rows, scores = self._top_rows(tokens, check_k(k), self.docs.mask(filter))
        ids = self.docs.ids
        top = dict(zip([ids[r] for r in rows.tolist()], scores.tolist(), strict=True))
        exact: dict[str, float] = {}
        if exact_for:
            all_scores = self.scores_for_tokens(tokens)
            row_of = self.docs.row_of
            exact = {i: float(all_scores[row_of[i]]) for i in exact_for if i in row_of}
        return top, exact

    @synchronized
    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        """The top ``k`` documents containing at least one query token, best first; ``filter`` applies first."""
        check_query(query)
        k = check_k(k)
        rows, scores = self._top_rows(self.tokenizer.tokenize(query), k, self.docs.mask(filter))
        return self.docs.hits(rows.tolist(), scores.tolist())

    @synchronized
    def search_batch(
        self, queries: Sequence[str], k: int = 10, filter: MetadataFilter | None = None
    ) -> list[list[SearchHit]]:
        """``search`` for many queries (all checked first; the filter mask is computed once)."""
        rows, scores = self._top_rows_many(queries, check_k(k), self.docs.mask(filter))
        return [self.docs.hits(r.tolist(), s.tolist()) for r, s in zip(rows, scores, strict=True)]

    @synchronized
    def retrieve_rows(self, queries: Sequence[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The low layer under ``search_batch``: row indices ``(n, k)`` (-1 where fewer match) and scores ``(n, k)``
        (-inf there), without building hit objects; map rows to ids with ``index.docs.ids``."""
        k = check_k(k)
        rows_out = np.full((len(queries), k), -1, dtype=np.int64)
        scores_out = np.full((len(queries), k), -np.inf)
        for i, (rows, scores) in enumerate(zip(*self._top_rows_many(queries, k, None), strict=True)):
            rows_out[i, : rows.size] = rows
            scores_out[i, : scores.size] = scores
        return rows_out, scores_out

    def _top_rows_many(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top rows and scores per query, every query checked before any is scored. One bincount per query: a
        (queries x terms) @ (terms x documents) sparse product was measured slower on SciFact (12k vs 14k q/s)."""
        for q in queries:
            check_query(q)
        tokenize, rows_out, scores_out = self.tokenizer.tokenize, [], []
        for q in queries:
            rows, scores = self._top_ids(self._token_ids(tokenize(q)), k, mask)
            rows_out.append(rows)
            scores_out.append(scores)
        return rows_out, scores_out

    def _top_rows(self, tokens: list[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self._top_ids(self._token_ids(tokens), k, mask)

    def _top_ids(self, tids: list[int], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` rows containing a query token (those ``mask`` keeps), best first, ties by row."""
        if not tids or k == 0:
            return _EMPTY
        n_docs = len(self.docs)
        if compiled is not None:
            term_ids = np.asarray(tids, dtype=np.int64)
            use_mask = mask is not None
            rows, scores = compiled.top_k(
                self._term_indptr, self._post_docs, self._post_scores, term_ids, n_docs, k,
                mask if use_mask else _NO_MASK, use_mask,
            )  # fmt: skip
            return self._with_constant(rows, scores, tids)
        docs, vals = self._gather(tids)
        summed = np.bincount(docs, weights=vals, minlength=n_docs)
        if self._positive:
            candidates = np.flatnonzero(summed > 0)  # faster than nonzero() on floats
        elif 8 * docs.size > n_docs:  # a count pass is cheaper than sorting when postings are many
            candidates = np.flatnonzero(np.bincount(docs, minlength=n_docs))
        else:
            candidates = np.unique(docs)
        return self._with_constant(*top_rows(summed, candidates, k, mask), tids)

    def _with_constant(self, rows: np.ndarray, scores: np.ndarray, tids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if self.method == "bm25plus":  # the only variant with a per-query constant
            scores = scores + scoring.query_constant(self.method, self._idf[tids], self.delta)
        return rows, scores

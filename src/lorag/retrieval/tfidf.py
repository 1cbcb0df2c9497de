"""``TfidfIndex``: TF-IDF vectors ranked by cosine similarity, the scores of scikit-learn's ``TfidfVectorizer``.

On the same tokens, every score equals ``TfidfVectorizer(analyzer=tokenize, sublinear_tf=..., smooth_idf=...)``'s
``transform([query]) @ fit_transform(corpus).T`` (l2-normalised rows, so the product is the cosine), to float
rounding. The weighting is two formulas in ``lorag.retrieval.scoring`` over a ``scipy.sparse`` count matrix (scipy is
a core dependency) rather than scikit-learn itself, for three reasons: scikit-learn is no dependency of lorag's core,
and importing its text module took 1.5 s on this project's busy 2-core machine (scipy.sparse: 0.3 s), paid by any
process importing ``lorag.retrieval``; a fitted vectorizer has no add or delete, so each change would refit from the
texts, while the index keeps raw counts and reweighs them in a few vectorised passes; and it persists by pickle, which
lorag refuses. The tests hold the two to equal scores on random corpora (``tests/retrieval/test_tfidf.py``), with
scikit-learn from ``lorag[bench]``.

Layout and API follow ``BM25Index``: raw counts kept document-major (by the shared base, ``TermCountIndex``),
weights stored term-major (``term_bounds`` / ``post_docs`` / ``post_weights``), so a query gathers its terms'
postings, scales each term's by its query weight and sums per document with ``np.bincount``. Only documents that
contain a query term are candidates (every weight is positive, so they are exactly the documents with a non-zero
cosine).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from lorag.retrieval import scoring
from lorag.retrieval._locking import synchronized
from lorag.retrieval.documents import MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.term_counts import TermCountIndex, top_rows
from lorag.retrieval.tokenization import TextTokenizer

KIND = "lorag.tfidf"
_EMPTY = np.zeros(0, dtype=np.int64), np.zeros(0)


class TfidfIndex(TermCountIndex):
    """A TF-IDF index over documents with ids and metadata, scored by cosine similarity (sibling: ``BM25Index``;
    documents, counts, adding, deleting and persistence come from ``TermCountIndex``).

    Args:
        sublinear_tf: weigh a term by ``1 + ln(count)`` instead of its count (scikit-learn's ``sublinear_tf``).
        smooth_idf: ``ln((n + 1) / (df + 1)) + 1`` instead of ``ln(n / df) + 1`` (scikit-learn's default, ``True``).
        tokenizer: anything with ``tokenize(text)`` and ``settings()``; the default ``Tokenizer()`` lowercases, drops
            English stopwords and stems, as for BM25.
    """

    KIND = KIND
    SAVE_LENGTHS = False  # the counts file has no doc_len: TF-IDF needs no document lengths
    SETTINGS = ("sublinear_tf", "smooth_idf")

    def __init__(
        self, *, sublinear_tf: bool = False, smooth_idf: bool = True, tokenizer: TextTokenizer | None = None
    ) -> None:
        for name, value in (("sublinear_tf", sublinear_tf), ("smooth_idf", smooth_idf)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        self.sublinear_tf = sublinear_tf
        self.smooth_idf = smooth_idf
        super().__init__(tokenizer)

    def _rebuild(self) -> None:
        """Recompute the IDFs and every document's l2-normalised TF-IDF weights from the raw counts."""
        counts = self.counts.matrix()
        n_docs, n_terms = counts.shape
        doc_freq = np.bincount(counts.indices, minlength=n_terms)
        self._idf = scoring.tfidf_idf(doc_freq, n_docs, smooth=self.smooth_idf)
        weights = scoring.tfidf_tf(counts.data, sublinear=self.sublinear_tf) * self._idf[counts.indices]
        post_rows = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
        norms = np.sqrt(np.bincount(post_rows, weights=weights * weights, minlength=n_docs))
        weights /= norms[post_rows]  # every row with a posting has a positive norm
        by_term = sp.csr_matrix((weights, counts.indices, counts.indptr), shape=counts.shape).tocsc()
        by_term.sort_indices()
        self._term_bounds: list[int] = by_term.indptr.tolist()  # Python ints slice arrays faster than numpy's
        self._post_docs = by_term.indices.astype(np.int64)
        self._post_weights = by_term.data

    # ----------------------------------------------------------------------------------------------------- querying
    def _query_vector(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The query's known terms and their l2-normalised TF-IDF weights (a repeated token counts again)."""
        vocab = self.vocab
        tids = [vocab[t] for t in tokens if t in vocab]
        if not tids:
            return _EMPTY
        terms, tfs = np.unique(np.asarray(tids, dtype=np.int64), return_counts=True)
        weights = scoring.tfidf_tf(tfs, sublinear=self.sublinear_tf) * self._idf[terms]
        return terms, weights / np.sqrt(np.dot(weights, weights))

    def _summed(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The cosine of every document (row order) with a tokenized query, and the rows of the postings that made
        it (the candidates, repeated); zeros and no rows when the query shares no term with the corpus."""
        terms, weights = self._query_vector(tokens)
        if not terms.size:
            return np.zeros(len(self.docs)), _EMPTY[0]
        ptr = self._term_bounds
        slices = [slice(ptr[t], ptr[t + 1]) for t in terms.tolist()]
        docs = np.concatenate([self._post_docs[s] for s in slices])
        vals = np.concatenate([self._post_weights[s] * w for s, w in zip(slices, weights.tolist(), strict=True)])
        return np.bincount(docs, weights=vals, minlength=len(self.docs)), docs

    @synchronized
    def scores_for_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """The cosine of every document (row order) with an already tokenized query; 0 where no term is shared."""
        return self._summed(tokens)[0]

    @synchronized
    def ranking(
        self, query: str, k: int, filter: MetadataFilter | None = None, *, exact_for: Sequence[str] = ()
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The top ``k`` as ``{id: score}`` in rank order, and the exact score of each id in ``exact_for`` (the
        interface ``HybridRetriever`` fuses, as ``BM25Index.ranking``)."""
        check_query(query)
        k = check_k(k)
        summed, docs = self._summed(self.tokenizer.tokenize(query))
        rows, scores = _top(summed, docs, k, self.docs.mask(filter))
        ids, row_of = self.docs.ids, self.docs.row_of
        top = dict(zip([ids[r] for r in rows.tolist()], scores.tolist(), strict=True))
        return top, {i: float(summed[row_of[i]]) for i in exact_for if i in row_of}

    @synchronized
    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        """The top ``k`` documents sharing at least one term with the query, best first; ``filter`` applies first."""
        return self.search_batch([query], k, filter)[0]

    @synchronized
    def search_batch(
        self, queries: Sequence[str], k: int = 10, filter: MetadataFilter | None = None
    ) -> list[list[SearchHit]]:
        """``search`` for many queries (all checked first; the filter mask is computed once)."""
        for q in queries:
            check_query(q)
        k = check_k(k)
        mask = self.docs.mask(filter)
        out = []
        for q in queries:
            rows, scores = _top(*self._summed(self.tokenizer.tokenize(q)), k, mask)
            out.append(self.docs.hits(rows.tolist(), scores.tolist()))
        return out


def _top(summed: np.ndarray, docs: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` rows among the candidates ``docs`` (those ``mask`` keeps), best first, ties by row."""
    if not docs.size or k == 0:
        return _EMPTY
    candidates = np.flatnonzero(summed > 0) if 8 * docs.size > summed.size else np.unique(docs)
    return top_rows(summed, candidates, k, mask)

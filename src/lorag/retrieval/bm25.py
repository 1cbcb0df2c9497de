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
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lorag.retrieval import persistence, scoring
from lorag.retrieval._locking import synchronized
from lorag.retrieval.documents import DocumentStore, MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.tokenization import TextTokenizer, Tokenizer

logger = logging.getLogger(__name__)

KIND = "lorag.bm25"
_EMPTY = np.zeros(0, dtype=np.int64), np.zeros(0)
_NO_MASK = np.zeros(0, dtype=bool)

try:  # the compiled query loop when numba is installed (lorag[fast]); the numpy path below gives the same results
    from lorag.retrieval import compiled
except ImportError:
    compiled = None  # type: ignore[assignment]


class BM25Index:
    """A BM25 index over documents with ids and metadata.

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
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.docs = DocumentStore()
        self._lock = threading.RLock()
        self.vocab: dict[str, int] = {}
        # Raw counts, documents x terms, CSR.
        self._doc_indptr = np.zeros(1, dtype=np.int64)
        self._doc_terms = np.zeros(0, dtype=np.int32)
        self._doc_tfs = np.zeros(0, dtype=np.int32)
        self._doc_len = np.zeros(0, dtype=np.int64)
        self._rebuild()

    # ----------------------------------------------------------------------------------------------------- building
    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> BM25Index:
        """Build an index from texts (``kwargs`` go to the constructor)."""
        index = cls(**kwargs)
        index.add(texts, ids=ids, metadatas=metadatas)
        return index

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "k1": self.k1,
            "b": self.b,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "tokenizer": self.tokenizer.settings(),
        }

    def term_idf(self, terms: Sequence[str]) -> list[float | None]:
        """Each term's IDF here (None for a term no document holds): how rare, so how telling, a word is in this
        corpus (``lorag.rag.answerability`` weighs a question's words by it)."""
        with self._lock:
            return [None if (i := self.vocab.get(t)) is None else float(self._idf[i]) for t in terms]

    def __len__(self) -> int:
        return len(self.docs)

    @synchronized
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add documents; returns their ids. A bad batch raises and leaves the index unchanged."""
        ids_, texts_, metas = self.docs.validate_new(ids, texts, metadatas)
        self._add_validated(ids_, texts_, metas)
        return ids_

    @synchronized
    def _add_validated(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]) -> None:
        vocab = dict(self.vocab)
        terms: list[int] = []
        tfs: list[int] = []
        indptr = [0]
        lengths = []
        for text in texts:
            tokens = self.tokenizer.tokenize(text)
            counts: dict[int, int] = {}
            for tok in tokens:
                tid = vocab.setdefault(tok, len(vocab))
                counts[tid] = counts.get(tid, 0) + 1
            terms.extend(counts)
            tfs.extend(counts.values())
            indptr.append(len(terms))
            lengths.append(len(tokens))
        base = self._doc_indptr[-1]
        self._doc_indptr = np.concatenate([self._doc_indptr, base + np.asarray(indptr[1:], dtype=np.int64)])
        self._doc_terms = np.concatenate([self._doc_terms, np.asarray(terms, dtype=np.int32)])
        self._doc_tfs = np.concatenate([self._doc_tfs, np.asarray(tfs, dtype=np.int32)])
        self._doc_len = np.concatenate([self._doc_len, np.asarray(lengths, dtype=np.int64)])
        self.vocab = vocab
        self.docs.add(ids, texts, metadatas)
        self._rebuild()

    def validate_delete(self, ids: Sequence[str]) -> np.ndarray:
        return self.docs.rows_of(ids)

    @synchronized
    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id; an unknown id raises ``KeyError`` and nothing is deleted."""
        rows = self.docs.rows_of(ids)
        keep = np.ones(len(self.docs), dtype=bool)
        keep[rows] = False
        counts = self._counts()[keep]
        # Drop terms no document uses any more, so the vocabulary (and Okapi's mean IDF) is what a fresh build gives.
        used = np.flatnonzero(np.bincount(counts.indices, minlength=len(self.vocab)) > 0)
        remap = np.full(len(self.vocab), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        terms = list(self.vocab)
        self.vocab = {terms[t]: i for i, t in enumerate(used.tolist())}
        self._doc_indptr = counts.indptr.astype(np.int64)
        self._doc_terms = remap[counts.indices].astype(np.int32)
        self._doc_tfs = counts.data.astype(np.int32)
        self._doc_len = self._doc_len[keep]
        self.docs.delete_rows(rows)
        self._rebuild()

    def _counts(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self._doc_tfs, self._doc_terms, self._doc_indptr), shape=(len(self._doc_len), len(self.vocab))
        )

    def _rebuild(self) -> None:
        """Recompute IDFs and every posting's score from the raw counts."""
        n_docs = len(self._doc_len)
        n_terms = len(self.vocab)
        if n_docs == 0 or n_terms == 0:
            self._idf = np.zeros(n_terms)
            self._term_indptr = np.zeros(n_terms + 1, dtype=np.int64)
            self._term_bounds: list[int] = self._term_indptr.tolist()
            self._post_docs = np.zeros(0, dtype=np.int32)
            self._post_scores = np.zeros(0)
            self._positive = True
            return
        by_term = self._counts().tocsc()
        by_term.sort_indices()
        doc_freq = np.diff(by_term.indptr)
        self._idf = scoring.idf(self.method, doc_freq, n_docs, self.epsilon)
        avgdl = float(self._doc_len.sum()) / n_docs
        post_terms = np.repeat(np.arange(n_terms), doc_freq)
        self._post_docs = by_term.indices.astype(np.int32)
        self._post_scores = scoring.term_scores(
            self.method,
            by_term.data,
            self._doc_len[self._post_docs],
            avgdl,
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

    @synchronized
    def score_documents(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """The exact score of each given document (by id) for ``query``, whether or not it made a top k."""
        scores = self.get_scores(query)
        row_of = self.docs.row_of
        return {doc_id: float(scores[row_of[doc_id]]) for doc_id in ids if doc_id in row_of}

    def get_scores(self, query: str) -> np.ndarray:
        """The score of every document (row order) for a query string."""
        return self.scores_for_tokens(self.tokenizer.tokenize(check_query(query)))

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
        if mask is not None:
            candidates = candidates[mask[candidates]]
        scores = summed[candidates]
        if candidates.size > k:
            kth = candidates.size - k
            threshold = scores[np.argpartition(scores, kth)[kth]]
            # Everything at or above the k-th best score, so ties at the cut are broken by row like the rest.
            keep = np.flatnonzero(scores >= threshold)
            candidates, scores = candidates[keep], scores[keep]
        order = np.lexsort((candidates, -scores))[:k]
        return self._with_constant(candidates[order].astype(np.int64), scores[order], tids)

    def _with_constant(self, rows: np.ndarray, scores: np.ndarray, tids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if self.method == "bm25plus":  # the only variant with a per-query constant
            scores = scores + scoring.query_constant(self.method, self._idf[tids], self.delta)
        return rows, scores

    # -------------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save to a directory atomically: an interrupted save leaves the previous index there loadable."""
        persistence.save_atomically(path, self.write_to)

    @synchronized
    def write_to(self, directory: Path) -> None:
        """Write this index's files and manifest into an existing empty directory (no atomicity by itself)."""
        persistence.save_arrays(
            directory / "counts.npz",
            doc_indptr=self._doc_indptr,
            doc_terms=self._doc_terms,
            doc_tfs=self._doc_tfs,
            doc_len=self._doc_len,
        )
        persistence.write_json(directory / "vocab.json", list(self.vocab))
        persistence.write_json(directory / "documents.json", self.docs.to_json())
        persistence.write_manifest(directory, KIND, self.settings())

    @classmethod
    def load(cls, path: str | Path, tokenizer: TextTokenizer | None = None) -> BM25Index:
        """Load a saved index; a ``tokenizer`` given must match the saved settings (default: rebuild the saved one)."""
        return cls.read_from(persistence.live_snapshot(path), tokenizer)

    @classmethod
    def read_from(cls, directory: Path, tokenizer: TextTokenizer | None = None) -> BM25Index:
        settings = persistence.read_manifest(directory, KIND)
        saved_tok = settings["tokenizer"]
        if tokenizer is None:
            tokenizer = Tokenizer.from_settings(saved_tok)
        else:
            persistence.check_settings("tokenizer", saved_tok, tokenizer.settings())
        index = cls(
            settings["method"],
            k1=settings["k1"],
            b=settings["b"],
            delta=settings["delta"],
            epsilon=settings["epsilon"],
            tokenizer=tokenizer,
        )
        arrays = persistence.load_arrays(directory / "counts.npz")
        vocab = persistence.read_json(directory / "vocab.json")
        docs = DocumentStore.from_json(persistence.read_json(directory / "documents.json"))
        try:
            index._doc_indptr = arrays["doc_indptr"].astype(np.int64)
            index._doc_terms = arrays["doc_terms"].astype(np.int32)
            index._doc_tfs = arrays["doc_tfs"].astype(np.int32)
            index._doc_len = arrays["doc_len"].astype(np.int64)
        except KeyError as err:
            raise persistence.IndexFormatError(f"{directory}/counts.npz lacks array {err}") from err
        index.vocab = {t: i for i, t in enumerate(vocab)}
        n = len(docs)
        if (
            len(index._doc_len) != n
            or len(index._doc_indptr) != n + 1
            or index._doc_indptr[-1] != len(index._doc_terms)
            or (len(index._doc_terms) and int(index._doc_terms.max()) >= len(index.vocab))
        ):
            raise persistence.IndexFormatError(f"{directory} is inconsistent: counts, vocabulary and documents differ")
        index.docs = docs
        index._rebuild()
        return index

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

Layout and API follow ``BM25Index``: raw counts kept document-major, weights stored term-major (``term_bounds`` /
``post_docs`` / ``post_weights``), so a query gathers its terms' postings, scales each term's by its query weight and
sums per document with ``np.bincount``. Only documents that contain a query term are candidates (every weight is
positive, so they are exactly the documents with a non-zero cosine).
"""

from __future__ import annotations

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

KIND = "lorag.tfidf"
_EMPTY = np.zeros(0, dtype=np.int64), np.zeros(0)


class TfidfIndex:
    """A TF-IDF index over documents with ids and metadata, scored by cosine similarity (sibling: ``BM25Index``).

    Args:
        sublinear_tf: weigh a term by ``1 + ln(count)`` instead of its count (scikit-learn's ``sublinear_tf``).
        smooth_idf: ``ln((n + 1) / (df + 1)) + 1`` instead of ``ln(n / df) + 1`` (scikit-learn's default, ``True``).
        tokenizer: anything with ``tokenize(text)`` and ``settings()``; the default ``Tokenizer()`` lowercases, drops
            English stopwords and stems, as for BM25.
    """

    def __init__(
        self, *, sublinear_tf: bool = False, smooth_idf: bool = True, tokenizer: TextTokenizer | None = None
    ) -> None:
        for name, value in (("sublinear_tf", sublinear_tf), ("smooth_idf", smooth_idf)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        self.sublinear_tf = sublinear_tf
        self.smooth_idf = smooth_idf
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.docs = DocumentStore()
        self._lock = threading.RLock()
        self.vocab: dict[str, int] = {}
        # Raw counts, documents x terms, CSR.
        self._doc_indptr = np.zeros(1, dtype=np.int64)
        self._doc_terms = np.zeros(0, dtype=np.int32)
        self._doc_tfs = np.zeros(0, dtype=np.int32)
        self._rebuild()

    # ----------------------------------------------------------------------------------------------------- building
    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> TfidfIndex:
        """Build an index from texts (``kwargs`` go to the constructor)."""
        index = cls(**kwargs)
        index.add(texts, ids=ids, metadatas=metadatas)
        return index

    def settings(self) -> dict[str, Any]:
        return {
            "sublinear_tf": self.sublinear_tf,
            "smooth_idf": self.smooth_idf,
            "tokenizer": self.tokenizer.settings(),
        }

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
        indptr = []
        for text in texts:
            counts: dict[int, int] = {}
            for tok in self.tokenizer.tokenize(text):
                tid = vocab.setdefault(tok, len(vocab))
                counts[tid] = counts.get(tid, 0) + 1
            terms.extend(counts)
            tfs.extend(counts.values())
            indptr.append(len(terms))
        base = self._doc_indptr[-1]
        self._doc_indptr = np.concatenate([self._doc_indptr, base + np.asarray(indptr, dtype=np.int64)])
        self._doc_terms = np.concatenate([self._doc_terms, np.asarray(terms, dtype=np.int32)])
        self._doc_tfs = np.concatenate([self._doc_tfs, np.asarray(tfs, dtype=np.int32)])
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
        # Drop terms no document uses any more: the vocabulary is then what a fresh build (or a refit) gives.
        used = np.flatnonzero(np.bincount(counts.indices, minlength=len(self.vocab)) > 0)
        remap = np.full(len(self.vocab), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        terms = list(self.vocab)
        self.vocab = {terms[t]: i for i, t in enumerate(used.tolist())}
        self._doc_indptr = counts.indptr.astype(np.int64)
        self._doc_terms = remap[counts.indices].astype(np.int32)
        self._doc_tfs = counts.data.astype(np.int32)
        self.docs.delete_rows(rows)
        self._rebuild()

    def _counts(self) -> sp.csr_matrix:
        n_docs = len(self._doc_indptr) - 1
        return sp.csr_matrix((self._doc_tfs, self._doc_terms, self._doc_indptr), shape=(n_docs, len(self.vocab)))

    def _rebuild(self) -> None:
        """Recompute the IDFs and every document's l2-normalised TF-IDF weights from the raw counts."""
        n_docs = len(self._doc_indptr) - 1
        n_terms = len(self.vocab)
        counts = self._counts()
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

    def get_scores(self, query: str) -> np.ndarray:
        """The score of every document (row order) for a query string."""
        return self.scores_for_tokens(self.tokenizer.tokenize(check_query(query)))

    @synchronized
    def score_documents(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """The exact score of each given document (by id) for ``query``, whether or not it made a top k."""
        scores = self.get_scores(query)
        row_of = self.docs.row_of
        return {doc_id: float(scores[row_of[doc_id]]) for doc_id in ids if doc_id in row_of}

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

    # -------------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save to a directory atomically: an interrupted save leaves the previous index there loadable."""
        persistence.save_atomically(path, self.write_to)

    @synchronized
    def write_to(self, directory: Path) -> None:
        """Write this index's files and manifest into an existing empty directory (no atomicity by itself)."""
        persistence.save_arrays(
            directory / "counts.npz", doc_indptr=self._doc_indptr, doc_terms=self._doc_terms, doc_tfs=self._doc_tfs
        )
        persistence.write_json(directory / "vocab.json", list(self.vocab))
        persistence.write_json(directory / "documents.json", self.docs.to_json())
        persistence.write_manifest(directory, KIND, self.settings())

    @classmethod
    def load(cls, path: str | Path, tokenizer: TextTokenizer | None = None) -> TfidfIndex:
        """Load a saved index; a ``tokenizer`` given must match the saved settings (default: rebuild the saved one)."""
        return cls.read_from(persistence.live_snapshot(path), tokenizer)

    @classmethod
    def read_from(cls, directory: Path, tokenizer: TextTokenizer | None = None) -> TfidfIndex:
        settings = persistence.read_manifest(directory, KIND)
        saved_tok = settings["tokenizer"]
        if tokenizer is None:
            tokenizer = Tokenizer.from_settings(saved_tok)
        else:
            persistence.check_settings("tokenizer", saved_tok, tokenizer.settings())
        index = cls(sublinear_tf=settings["sublinear_tf"], smooth_idf=settings["smooth_idf"], tokenizer=tokenizer)
        arrays = persistence.load_arrays(directory / "counts.npz")
        vocab = persistence.read_json(directory / "vocab.json")
        docs = DocumentStore.from_json(persistence.read_json(directory / "documents.json"))
        try:
            index._doc_indptr = arrays["doc_indptr"].astype(np.int64)
            index._doc_terms = arrays["doc_terms"].astype(np.int32)
            index._doc_tfs = arrays["doc_tfs"].astype(np.int32)
        except KeyError as err:
            raise persistence.IndexFormatError(f"{directory}/counts.npz lacks array {err}") from err
        index.vocab = {t: i for i, t in enumerate(vocab)}
        if (
            len(index._doc_indptr) != len(docs) + 1
            or index._doc_indptr[-1] != len(index._doc_terms)
            or (len(index._doc_terms) and int(index._doc_terms.max()) >= len(index.vocab))
        ):
            raise persistence.IndexFormatError(f"{directory} is inconsistent: counts, vocabulary and documents differ")
        index.docs = docs
        index._rebuild()
        return index


def _top(summed: np.ndarray, docs: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` rows among the candidates ``docs`` (those ``mask`` keeps), best first, ties by row."""
    if not docs.size or k == 0:
        return _EMPTY
    candidates = np.flatnonzero(summed > 0) if 8 * docs.size > summed.size else np.unique(docs)
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
    return candidates[order].astype(np.int64), scores[order]

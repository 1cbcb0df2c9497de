"""Raw term counts and the document bookkeeping that ``BM25Index`` and ``TfidfIndex`` share.

Both sparse indexes keep every document's raw term counts (document-major CSR arrays ``indptr`` / ``terms`` /
``tfs``, each document's token count, and the vocabulary) beside a ``DocumentStore``, and recompute their own weights
from them after each change: BM25 its IDFs and per-posting scores, TF-IDF its l2-normalised weights. ``TermCounts``
is those arrays (append tokenized documents, drop rows and the terms no row uses any more, the scipy matrix, the
``counts.npz`` + ``vocab.json`` files). ``TermCountIndex`` is the base class that owns them with the documents and the
lock (adding, deleting, saving and loading), as peft's ``BaseTuner`` owns what every tuner shares; a subclass writes
only its weighting (``_rebuild``), its settings and its queries. ``top_rows`` is the top-k selection both query paths
end with.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp

from lorag.retrieval import persistence
from lorag.retrieval._locking import synchronized
from lorag.retrieval.documents import DocumentStore, check_query
from lorag.retrieval.tokenization import TextTokenizer, Tokenizer

COUNTS_FILE = "counts.npz"
VOCAB_FILE = "vocab.json"
DOCUMENTS_FILE = "documents.json"

IndexT = TypeVar("IndexT", bound="TermCountIndex")


class TermCounts:
    """Documents x terms raw counts as CSR arrays, with the vocabulary (term -> column) and each row's token count.

    Attributes:
        vocab: term -> column, in the order terms were first seen (a fresh build's order).
        indptr: ``int64``, ``n_docs + 1`` row offsets into ``terms`` / ``tfs``.
        terms: ``int32`` column of each non-zero.
        tfs: ``int32`` count of each non-zero.
        lengths: ``int64`` tokens per document (repeated tokens counted each time).
    """

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.indptr = np.zeros(1, dtype=np.int64)
        self.terms = np.zeros(0, dtype=np.int32)
        self.tfs = np.zeros(0, dtype=np.int32)
        self.lengths = np.zeros(0, dtype=np.int64)

    @property
    def n_docs(self) -> int:
        return len(self.indptr) - 1

    def add(self, documents: Iterable[Sequence[str]]) -> None:
        """Append one row per tokenized document; new terms join the vocabulary. Nothing changes when iterating
        ``documents`` raises (a tokenizer failing half-way through a batch)."""
        vocab = dict(self.vocab)
        terms: list[int] = []
        tfs: list[int] = []
        indptr: list[int] = []
        lengths: list[int] = []
        for tokens in documents:
            counts: dict[int, int] = {}
            for tok in tokens:
                tid = vocab.setdefault(tok, len(vocab))
                counts[tid] = counts.get(tid, 0) + 1
            terms.extend(counts)
            tfs.extend(counts.values())
            indptr.append(len(terms))
            lengths.append(len(tokens))
        base = self.indptr[-1]
        self.indptr = np.concatenate([self.indptr, base + np.asarray(indptr, dtype=np.int64)])
        self.terms = np.concatenate([self.terms, np.asarray(terms, dtype=np.int32)])
        self.tfs = np.concatenate([self.tfs, np.asarray(tfs, dtype=np.int32)])
        self.lengths = np.concatenate([self.lengths, np.asarray(lengths, dtype=np.int64)])
        self.vocab = vocab

    def keep_rows(self, keep: np.ndarray) -> None:
        """Keep the rows where the boolean ``keep`` is true and drop the terms no kept row uses (the rest keep their
        order), so the vocabulary holds the terms a fresh build over the kept documents has (Okapi's mean IDF and
        TF-IDF's columns depend on it)."""
        counts = self.matrix()[keep]
        used = np.flatnonzero(np.bincount(counts.indices, minlength=len(self.vocab)) > 0)
        remap = np.full(len(self.vocab), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        terms = list(self.vocab)
        self.vocab = {terms[t]: i for i, t in enumerate(used.tolist())}
        self.indptr = counts.indptr.astype(np.int64)
        self.terms = remap[counts.indices].astype(np.int32)
        self.tfs = counts.data.astype(np.int32)
        self.lengths = self.lengths[keep]

    def matrix(self) -> sp.csr_matrix:
        """The counts as a ``scipy.sparse`` CSR matrix (documents x terms), sharing these arrays."""
        return sp.csr_matrix((self.tfs, self.terms, self.indptr), shape=(self.n_docs, len(self.vocab)))

    def save(self, directory: Path, *, lengths: bool) -> None:
        """Write ``counts.npz`` (``doc_indptr``, ``doc_terms``, ``doc_tfs``, and ``doc_len`` when ``lengths``) and
        ``vocab.json`` (the terms in column order)."""
        arrays: dict[str, np.ndarray] = {"doc_indptr": self.indptr, "doc_terms": self.terms, "doc_tfs": self.tfs}
        if lengths:
            arrays["doc_len"] = self.lengths
        persistence.save_arrays(directory / COUNTS_FILE, **arrays)
        persistence.write_json(directory / VOCAB_FILE, list(self.vocab))

    @classmethod
    def load(cls, directory: Path, *, lengths: bool) -> TermCounts:
        """Read what ``save`` wrote (``doc_len`` required when ``lengths``, else each row's count sum); call
        ``check`` once the number of documents is known."""
        arrays = persistence.load_arrays(directory / COUNTS_FILE)
        vocab = persistence.read_json(directory / VOCAB_FILE)
        counts = cls()
        try:
            counts.indptr = arrays["doc_indptr"].astype(np.int64)
            counts.terms = arrays["doc_terms"].astype(np.int32)
            counts.tfs = arrays["doc_tfs"].astype(np.int32)
            if lengths:
                counts.lengths = arrays["doc_len"].astype(np.int64)
        except KeyError as err:
            raise persistence.IndexFormatError(f"{directory}/{COUNTS_FILE} lacks array {err}") from err
        counts.vocab = {t: i for i, t in enumerate(vocab)}
        if not lengths and counts._rows_consistent():
            rows = np.repeat(np.arange(counts.n_docs), np.diff(counts.indptr))
            counts.lengths = np.bincount(rows, weights=counts.tfs, minlength=counts.n_docs).astype(np.int64)
        return counts

    def _rows_consistent(self) -> bool:
        return bool(
            len(self.indptr) >= 1
            and self.indptr[0] == 0
            and self.indptr[-1] == len(self.terms) == len(self.tfs)
            and (np.diff(self.indptr) >= 0).all()
        )

    def check(self, n_docs: int, where: Path) -> None:
        """Raise ``IndexFormatError`` unless these counts have ``n_docs`` rows and only known terms."""
        if (
            self.n_docs != n_docs
            or len(self.lengths) != n_docs
            or not self._rows_consistent()
            or (len(self.terms) and int(self.terms.max()) >= len(self.vocab))
        ):
            raise persistence.IndexFormatError(f"{where} is inconsistent: counts, vocabulary and documents differ")


class TermCountIndex(ABC):
    """Base of the sparse indexes over raw term counts (``BM25Index``, ``TfidfIndex``): documents with ids and
    metadata, their ``TermCounts``, one ``RLock``, adding, deleting, saving and loading.

    A subclass sets ``KIND`` (the manifest's kind), ``SAVE_LENGTHS`` (whether ``counts.npz`` holds ``doc_len``) and
    ``SETTINGS`` (its keyword arguments, kept as attributes of the same names and saved in the manifest), and
    implements ``_rebuild`` (its weights from ``self.counts``, run after every change) and ``scores_for_tokens``.
    """

    KIND: ClassVar[str]
    SAVE_LENGTHS: ClassVar[bool]
    SETTINGS: ClassVar[tuple[str, ...]]

    def __init__(self, tokenizer: TextTokenizer | None) -> None:
        """Call last in a subclass's ``__init__``, once the attributes ``SETTINGS`` names are set."""
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.docs = DocumentStore()
        self._lock = threading.RLock()
        self.counts = TermCounts()
        self._rebuild()

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (``SETTINGS``) and the tokenizer's settings, as saved in the manifest."""
        return {**{name: getattr(self, name) for name in self.SETTINGS}, "tokenizer": self.tokenizer.settings()}

    @property
    def vocab(self) -> dict[str, int]:
        """Term -> column of the counts (and of each index's per-term arrays)."""
        return self.counts.vocab

    @abstractmethod
    def _rebuild(self) -> None:
        """Recompute the index's weights from ``self.counts``."""

    @abstractmethod
    def scores_for_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """The score of every document (row order) for an already tokenized query."""

    # ----------------------------------------------------------------------------------------------------- building
    @classmethod
    def from_texts(
        cls: type[IndexT],
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> IndexT:
        """Build an index from texts (``kwargs`` go to the constructor)."""
        index = cls(**kwargs)
        index.add(texts, ids=ids, metadatas=metadatas)
        return index

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
        self.add_validated(ids_, texts_, metas)
        return ids_

    @synchronized
    def add_validated(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Add a batch ``docs.validate_new`` returned (a ``HybridRetriever`` checks both sides before adding to either);
        a tokenizer failing part-way leaves the index unchanged."""
        tokenize = self.tokenizer.tokenize
        self.counts.add(tokenize(text) for text in texts)
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
        self.counts.keep_rows(keep)
        self.docs.delete_rows(rows)
        self._rebuild()

    # ----------------------------------------------------------------------------------------------------- scoring
    def get_scores(self, query: str) -> np.ndarray:
        """The score of every document (row order) for a query string."""
        return self.scores_for_tokens(self.tokenizer.tokenize(check_query(query)))

    @synchronized
    def score_documents(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """The exact score of each given document (by id) for ``query``, whether or not it made a top k."""
        scores = self.get_scores(query)
        row_of = self.docs.row_of
        return {doc_id: float(scores[row_of[doc_id]]) for doc_id in ids if doc_id in row_of}

    # -------------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save to a directory atomically: an interrupted save leaves the previous index there loadable."""
        persistence.save_atomically(path, self.write_to)

    @synchronized
    def write_to(self, directory: Path) -> None:
        """Write this index's files and manifest into an existing empty directory (no atomicity by itself)."""
        self.counts.save(directory, lengths=self.SAVE_LENGTHS)
        persistence.write_json(directory / DOCUMENTS_FILE, self.docs.to_json())
        persistence.write_manifest(directory, self.KIND, self.settings())

    @classmethod
    def load(cls: type[IndexT], path: str | Path, tokenizer: TextTokenizer | None = None) -> IndexT:
        """Load a saved index; a ``tokenizer`` given must match the saved settings (default: rebuild the saved one)."""
        return cls.read_from(persistence.live_snapshot(path), tokenizer)

    @classmethod
    def read_from(cls: type[IndexT], directory: Path, tokenizer: TextTokenizer | None = None) -> IndexT:
        """Load the index ``write_to`` wrote into ``directory``, verifying the manifest and every file."""
        settings = persistence.read_manifest(directory, cls.KIND)
        saved_tok = settings["tokenizer"]
        if tokenizer is None:
            tokenizer = Tokenizer.from_settings(saved_tok)
        else:
            persistence.check_settings("tokenizer", saved_tok, tokenizer.settings())
        index = cls(**{name: settings[name] for name in cls.SETTINGS}, tokenizer=tokenizer)
        counts = TermCounts.load(directory, lengths=cls.SAVE_LENGTHS)
        docs = DocumentStore.from_json(persistence.read_json(directory / DOCUMENTS_FILE))
        counts.check(len(docs), directory)
        index.counts = counts
        index.docs = docs
        index._rebuild()
        return index


def top_rows(
    summed: np.ndarray, candidates: np.ndarray, k: int, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of the ``candidates`` rows (those ``mask`` keeps) by ``summed``, best first, ties by row."""
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

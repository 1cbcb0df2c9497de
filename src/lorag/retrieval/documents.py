"""Documents by id (text + JSON metadata) in row order, with validation and metadata filter masks.

Every index keeps one ``DocumentStore``; rows are the positions the index's arrays use. Validation happens before any
change, so a rejected batch leaves the store as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lorag.retrieval import filters
from lorag.retrieval.filters import MetadataFilter


class SearchHit(NamedTuple):
    """One retrieved document: its id, score, rank (from 1), text and metadata.

    A NamedTuple rather than a dataclass: search builds up to k of these per query, and tuple construction is the
    cheapest immutable record in Python (it was the largest cost of a BM25 query after the arithmetic).
    """

    id: str
    score: float
    rank: int
    text: str
    metadata: dict[str, Any] = {}  # noqa: RUF012 - never mutated; hits from a store carry the store's dict


def check_query(query: object) -> str:
    """Reject non-strings and empty or blank queries with a clear error."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty: give some text to search for")
    return query


def check_k(k: object) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


class DocumentStore:
    """Ids, texts and metadata of the documents of one index, in row order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metadatas: list[dict[str, Any]] = []
        self.row_of: dict[str, int] = {}
        self._columns: dict[str, dict[Any, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.row_of

    def metadata_of(self, doc_id: str) -> dict[str, Any] | None:
        """The metadata of a document held here (not a copy: read it, never change it), ``None`` for another id."""
        row = self.row_of.get(doc_id)
        return None if row is None else self.metadatas[row]

    def validate_new(
        self, ids: Sequence[str] | None, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None] | None
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Check a batch before adding it; returns it normalised (ids generated when ``None``)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        texts = list(texts)
        if not texts:
            raise ValueError("no documents given: the corpus is empty")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        if ids is None:
            start = len(self.ids)
            ids = [str(start + i) for i in range(len(texts))]
            while any(i in self.row_of for i in ids):
                start += len(texts)
                ids = [str(start + i) for i in range(len(texts))]
        ids = list(ids)
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise TypeError(f"ids[{i}] must be a non-empty str, got {doc_id!r}")
        seen: set[str] = set()
        dupes = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"duplicate ids in the batch: {dupes[:10]}")
        taken = [i for i in ids if i in self.row_of]
        if taken:
            raise ValueError(f"ids already in the index: {taken[:10]}; delete them first to replace them")
        if metadatas is None:
            metas: list[dict[str, Any]] = [{} for _ in texts]
        else:
            metas = [dict(m or {}) for m in metadatas]
            if len(metas) != len(texts):
                raise ValueError(f"got {len(metas)} metadatas for {len(texts)} texts")
        for i, m in enumerate(metas):
            try:
                json.dumps(m)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"metadatas[{i}] must be JSON-serialisable (it is saved with the index): {err}"
                ) from err
        return ids, texts, metas

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of existing ids; unknown or repeated ids are an error."""
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of ids, not one string")
        ids = list(ids)
        if not ids:
            raise ValueError("no ids given to delete")
        unknown = [i for i in ids if i not in self.row_of]
        if unknown:
            raise KeyError(f"unknown ids, not in the index: {unknown[:10]}")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in the delete request")
        return np.array(sorted(self.row_of[i] for i in ids), dtype=np.int64)

    def add(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Append an already validated batch."""
        start = len(self.ids)
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.metadatas.extend(metadatas)
        self.row_of.update((doc_id, start + j) for j, doc_id in enumerate(ids))
        self._columns.clear()

    def delete_rows(self, rows: np.ndarray) -> None:
        drop = set(rows.tolist())
        keep = [r for r in range(len(self.ids)) if r not in drop]
        self.ids = [self.ids[r] for r in keep]
        self.texts = [self.texts[r] for r in keep]
        self.metadatas = [self.metadatas[r] for r in keep]
        self.row_of = {doc_id: r for r, doc_id in enumerate(self.ids)}
        self._columns.clear()

    def hits(self, rows: list[int], scores: list[float]) -> list[SearchHit]:
        """Hits for rows in rank order (``rows`` and ``scores`` as Python lists); metadata is copied, so a caller that
        edits a hit's metadata cannot change the index behind its filters."""
        ids, texts, metas = self.ids, self.texts, self.metadatas
        new = tuple.__new__  # skips the NamedTuple's generated __new__: same object, a third of the cost
        return [
            new(SearchHit, (ids[r], s, rank, texts[r], dict(metas[r]) if metas[r] else {}))
            for rank, (r, s) in enumerate(zip(rows, scores, strict=True), start=1)
        ]

    def mask(self, filter: MetadataFilter | None) -> np.ndarray | None:
        """Boolean mask over rows of documents that pass ``filter`` (``None`` when there is no filter)."""
        if not filter:
            return None
        return filters.mask(filter, len(self.ids), self._column)

    def _column(self, key: str) -> dict[Any, np.ndarray]:
        """Rows per value of one metadata key, built once and reused until the next change."""
        column = self._columns.get(key)
        if column is None:
            groups: dict[Any, list[int]] = {}
            for row, meta in enumerate(self.metadatas):
                if key in meta:
                    groups.setdefault(filters.hashable(meta[key]), []).append(row)
            column = {v: np.asarray(r, dtype=np.int64) for v, r in groups.items()}
            self._columns[key] = column
        return column

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "texts": self.texts, "metadatas": self.metadatas}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentStore:
        store = cls()
        ids, texts, metas = list(data["ids"]), list(data["texts"]), list(data["metadatas"])
        if not (len(ids) == len(texts) == len(metas)):
            raise ValueError("saved documents are inconsistent: ids, texts and metadatas differ in length")
        store.add(ids, texts, metas)
        return store

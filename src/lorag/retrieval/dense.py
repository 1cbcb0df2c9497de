"""Dense retrieval: the ``DenseBackend`` protocol and ``DenseIndex``, its FAISS implementation.

``HybridRetriever`` talks to the dense side only through ``DenseBackend``, so the FAISS index here can be swapped for
any LangChain VectorStore or LlamaIndex vector store (Qdrant, Milvus, pgvector, Elasticsearch...) through the thin
adapters in ``langchain_lorag`` and ``llama_index.retrievers.lorag``. A side that also offers ``VectorRanking``
(embed the query once, rank and score by its vector) or ``StagedAdd`` (check and embed a batch before adding it),
as ``DenseIndex`` does, gets the hybrid's fast path for each (the hybrid checks for the protocol, not the class).

``DenseIndex`` keeps FAISS ids equal to document rows: exact inner product (``IndexFlatIP``) by default, HNSW or IVF
for large corpora, built and searched through ``lorag.embedding.faiss_index`` (lorag's one FAISS layer). With
normalised embeddings, inner product is cosine similarity. Metadata filters become a FAISS ``IDSelector`` so the
filter applies inside the search, before the top-k cut (exact for ``flat``; HNSW and IVF are approximate and may
return fewer than k under a very selective filter).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lorag._imports import require
from lorag.embedding.faiss_index import INDEX_TYPES, build_faiss_index, search_faiss_index, search_params
from lorag.retrieval import persistence
from lorag.retrieval._locking import synchronized
from lorag.retrieval.documents import DocumentStore, MetadataFilter, SearchHit, check_k, check_query

logger = logging.getLogger(__name__)

KIND = "lorag.dense"


@runtime_checkable
class DenseBackend(Protocol):
    """What ``HybridRetriever`` needs from the dense side: add, delete and search documents by id."""

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]: ...


@runtime_checkable
class VectorRanking(Protocol):
    """The dense fast path: embed a query once, then rank and score by that vector, without hit objects.

    ``HybridRetriever`` embeds the query outside its lock, ranks the filtered top ``k`` by the vector and scores the
    lexical side's other candidates by the same vector (``lorag.retrieval.candidates``). ``DenseIndex`` is one; a
    dense side that is not searches by text (``DenseBackend.search``). ``score_documents`` takes the query's vector,
    not its text as ``stores.ScoringStore``'s does, so this protocol is checked first.
    """

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector (float32, one dimension), as ``ranking`` and ``score_documents`` take it."""
        ...

    def ranking(self, query_vector: np.ndarray, k: int, filter: MetadataFilter | None = None) -> dict[str, float]:
        """The top ``k`` as ``{id: score}``, best first; ``filter`` applies before the cut."""
        ...

    def score_documents(self, query_vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """The score of each of ``ids`` it holds, on the scale of ``ranking``'s scores."""
        ...


#: A batch ``StagedAdd.prepare`` checked and embedded: ids, texts, metadata and vectors, for ``commit``.
StagedBatch = tuple[list[str], list[str], list[dict[str, Any]], np.ndarray]


@runtime_checkable
class StagedAdd(Protocol):
    """A dense side that adds in two steps, so ``HybridRetriever`` checks and embeds a batch before changing anything,
    and can take precomputed ``embeddings``. ``DenseIndex`` is one; a dense side that is not gets ``add``."""

    def prepare(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> StagedBatch:
        """Check and embed a batch (``embeddings`` skips embedding it) without changing anything."""
        ...

    def commit(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """Add a batch that ``prepare`` returned."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """What ``DenseIndex`` needs from an embedder; ``lorag.embedding.Embedder`` is one."""

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def settings(self) -> dict[str, Any]: ...


class DenseIndex:
    """Documents embedded by ``embedder`` in a FAISS inner-product index.

    Args:
        embedder: a ``lorag.embedding.Embedder`` (or anything with its ``TextEmbedder`` methods). Its ``settings()``
            are saved with the index and must match on load.
        index_type: ``"flat"`` (exact, default), ``"hnsw"`` or ``"ivf"``.
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth.
        ivf_nlist: IVF cells; ``None`` picks ``4 * sqrt(n)`` at the first add (IVF is trained then).
        ivf_nprobe: IVF cells visited per query.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        index_type: str = "flat",
        hnsw_m: int = 32,
        ef_search: int = 64,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 8,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ValueError(f"unknown index_type {index_type!r}; choose one of {list(INDEX_TYPES)}")
        self._faiss = require("faiss", purpose="dense retrieval")
        self.embedder = embedder
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.dimension = int(embedder.dimension)
        self.docs = DocumentStore()
        self._lock = threading.RLock()
        self._index: Any = None

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedder: TextEmbedder,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
        **kwargs: Any,
    ) -> DenseIndex:
        index = cls(embedder, **kwargs)
        index.add(texts, ids=ids, metadatas=metadatas, embeddings=embeddings)
        return index

    def __len__(self) -> int:
        return len(self.docs)

    def settings(self) -> dict[str, Any]:
        return {
            "index_type": self.index_type,
            "hnsw_m": self.hnsw_m,
            "ef_search": self.ef_search,
            "ivf_nlist": self.ivf_nlist,
            "ivf_nprobe": self.ivf_nprobe,
            "embedder": self.embedder.settings(),
        }

    # ----------------------------------------------------------------------------------------------------- building
    def _new_index(self, n_train: int) -> Any:
        if self.index_type == "ivf":
            nlist = self.ivf_nlist or max(1, int(4 * math.sqrt(n_train)))
            self.ivf_nlist = min(nlist, n_train)
        return build_faiss_index(
            "float32",
            self.dimension,
            index_type=self.index_type,
            hnsw_m=self.hnsw_m,
            ef_search=self.ef_search,
            nlist=self.ivf_nlist,
        )

    def check_embeddings(self, embeddings: Any, n: int) -> np.ndarray:
        """Validate precomputed or freshly made embeddings: shape ``(n, dimension)``, finite."""
        try:
            vectors = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"embeddings must be a numeric array of shape ({n}, {self.dimension}): {err}") from err
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ValueError(f"embeddings must have shape ({n}, {self.dimension}), got {vectors.shape}")
        if vectors.shape[1] != self.dimension:
            raise ValueError(
                f"embeddings have dimension {vectors.shape[1]}; this index holds {self.dimension}-dimensional vectors"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinite values")
        return vectors

    def prepare(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> StagedBatch:
        """Validate and embed a batch without changing the index (so a caller can check every part first)."""
        ids_, texts_, metas = self.docs.validate_new(ids, texts, metadatas)
        raw = self.embedder.embed_documents(texts_) if embeddings is None else embeddings
        return ids_, texts_, metas, self.check_embeddings(raw, len(texts_))

    @synchronized
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> list[str]:
        """Embed (unless ``embeddings`` are given) and add documents; a bad batch leaves the index unchanged."""
        batch = self.prepare(texts, ids, metadatas, embeddings)
        self.commit(*batch)
        return batch[0]

    @synchronized
    def commit(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """Add a batch that ``prepare`` returned."""
        index = self._index
        if index is None:
            index = self._new_index(len(vectors))
            if not index.is_trained:
                index.train(vectors)
        index.add(vectors)
        if self.index_type == "ivf":
            index.make_direct_map()
        self._index = index
        self.docs.add(ids, texts, metadatas)

    @synchronized
    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id; an unknown id raises ``KeyError`` and nothing is deleted."""
        rows = self.docs.rows_of(ids)
        keep = np.ones(len(self.docs), dtype=bool)
        keep[rows] = False
        vectors = self.vectors()[keep]
        fresh = self._faiss.clone_index(self._index)
        fresh.reset()  # keeps IVF training; row ids must stay contiguous, so the rest is re-added in order
        if self.index_type == "ivf":
            fresh.make_direct_map(False)
        if len(vectors):
            fresh.add(vectors)
            if self.index_type == "ivf":
                fresh.make_direct_map()
        self._index = fresh
        self.docs.delete_rows(rows)

    @synchronized
    def vectors(self) -> np.ndarray:
        """All stored vectors in row order."""
        if self._index is None or self._index.ntotal == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._index.reconstruct_n(0, self._index.ntotal)

    # ----------------------------------------------------------------------------------------------------- querying
    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        """The ``k`` nearest documents to the embedded query, best first; ``filter`` applies inside the search."""
        check_query(query)
        k = check_k(k)
        if k == 0 or not len(self.docs):
            return []
        return self.search_vectors(self.embed_query(query)[None, :], k, filter)[0]

    def embed_query(self, query: str) -> np.ndarray:
        """The query embedded by this index's embedder, as float32 (what ``ranking`` and ``score_documents`` take)."""
        return np.asarray(self.embedder.embed_query(query), dtype=np.float32)

    @synchronized
    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, filter: MetadataFilter | None = None
    ) -> list[list[SearchHit]]:
        """Search with query vectors already made (shape ``(n, dimension)``)."""
        rows, scores = self._search_rows(vectors, check_k(k), filter)
        return [self.docs.hits(r, s) for r, s in zip(rows, scores, strict=True)]

    @synchronized
    def ranking(self, query_vector: np.ndarray, k: int, filter: MetadataFilter | None = None) -> dict[str, float]:
        """The top ``k`` for one query vector as ``{id: score}`` in rank order (no hit objects: the hybrid's path)."""
        rows, scores = self._search_rows(np.asarray(query_vector, dtype=np.float32)[None, :], check_k(k), filter)
        ids = self.docs.ids
        return dict(zip([ids[r] for r in rows[0]], scores[0], strict=True))

    def _search_rows(
        self, vectors: np.ndarray, k: int, filter: MetadataFilter | None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Rows and scores per query vector, best first (FAISS's -1 padding dropped)."""
        vectors = self.check_embeddings(vectors, len(vectors))
        empty: tuple[list[list[int]], list[list[float]]] = ([[] for _ in vectors], [[] for _ in vectors])
        if k == 0 or not len(self.docs):
            return empty
        mask = self.docs.mask(filter)
        params = None
        if mask is not None:
            allowed = np.flatnonzero(mask)
            if allowed.size == 0:
                return empty
            params = self._search_params(self._faiss.IDSelectorBatch(allowed.astype(np.int64)))
            k = min(k, int(allowed.size))
        elif self.index_type != "flat":
            params = self._search_params(None)
        k = min(k, len(self.docs))
        scores, rows = search_faiss_index(self._index, vectors, k, "float32", params=params)
        keep = rows >= 0
        return (
            [r[m].tolist() for r, m in zip(rows, keep, strict=True)],
            [s[m].tolist() for s, m in zip(scores, keep, strict=True)],
        )

    @synchronized
    def score_documents(self, query_vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """The exact inner product of each given document (by id) with a query vector."""
        known = [doc_id for doc_id in ids if doc_id in self.docs.row_of]
        if not known or self._index is None:
            return {}
        rows = np.fromiter((self.docs.row_of[i] for i in known), dtype=np.int64, count=len(known))
        scores = self._index.reconstruct_batch(rows) @ np.asarray(query_vector, dtype=np.float32)
        return dict(zip(known, scores.tolist(), strict=True))

    def _search_params(self, selector: Any) -> Any:
        return search_params(self.index_type, selector=selector, ef_search=self.ef_search, nprobe=self.ivf_nprobe)

    # -------------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save to a directory atomically (FAISS's own format plus JSON); the previous save survives a crash."""
        persistence.save_atomically(path, self.write_to)

    @synchronized
    def write_to(self, directory: Path) -> None:
        if self._index is not None:
            self._faiss.write_index(self._index, str(directory / "index.faiss"))
        persistence.write_json(directory / "documents.json", self.docs.to_json())
        persistence.write_manifest(directory, KIND, self.settings())

    @classmethod
    def load(cls, path: str | Path, embedder: TextEmbedder) -> DenseIndex:
        """Load a saved index; ``embedder`` must have the settings it was built with, else ``SettingsMismatchError``."""
        return cls.read_from(persistence.live_snapshot(path), embedder)

    @classmethod
    def read_from(cls, directory: Path, embedder: TextEmbedder) -> DenseIndex:
        settings = persistence.read_manifest(directory, KIND)
        persistence.check_settings("embedder", settings["embedder"], embedder.settings())
        index = cls(
            embedder,
            index_type=settings["index_type"],
            hnsw_m=settings["hnsw_m"],
            ef_search=settings["ef_search"],
            ivf_nlist=settings["ivf_nlist"],
            ivf_nprobe=settings["ivf_nprobe"],
        )
        docs = DocumentStore.from_json(persistence.read_json(directory / "documents.json"))
        faiss_path = directory / "index.faiss"
        if faiss_path.is_file():
            try:
                index._index = index._faiss.read_index(str(faiss_path))
            except RuntimeError as err:
                raise persistence.IndexFormatError(f"{faiss_path} cannot be read: {err}") from err
        ntotal = 0 if index._index is None else int(index._index.ntotal)
        if ntotal != len(docs) or (index._index is not None and index._index.d != index.dimension):
            raise persistence.IndexFormatError(f"{directory} is inconsistent: FAISS index and documents differ")
        index.docs = docs
        return index

"""The dense fast path is a protocol, not a class: a backend implementing ``VectorRanking`` (and optionally
``StagedAdd``) without being a ``DenseIndex`` gets the same fused results as the FAISS ``DenseIndex``."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever, SearchHit
from lorag.retrieval.dense import StagedAdd, StagedBatch, VectorRanking
from lorag.retrieval.documents import DocumentStore, MetadataFilter

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Wolves and foxes both belong to the family Canidae.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Python is a programming language that lets you work quickly.",
    "Rust is a programming language focused on safety and speed.",
]
IDS = [f"d{i}" for i in range(len(TEXTS))]
METADATAS = [{"topic": t} for t in ("animals", "animals", "places", "places", "computing", "computing")]
QUERIES = ["fox dog", "capital of France", "programming language speed", "tower"]


class WordVectors:
    """A deterministic embedder: each word a fixed random vector (seeded by its CRC), a text their normalised sum, so
    scores are continuous and ties do not occur."""

    dimension = 16

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension)
        for word in text.lower().split():
            vector += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dimension)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)

    def settings(self) -> dict[str, Any]:
        return {"type": "word-vectors", "dimension": self.dimension}


class NumpyRanking:
    """A dense backend in plain numpy that implements ``VectorRanking`` and ``DenseBackend``, and is no ``DenseIndex``.

    Its text ``search`` fails, so a hybrid that takes the store path instead of the fast one fails too."""

    def __init__(self, embedder: WordVectors) -> None:
        self.embedder = embedder
        self.docs = DocumentStore()
        self.matrix = np.zeros((0, embedder.dimension), dtype=np.float32)
        self.embedded_queries = 0

    def __len__(self) -> int:
        return len(self.docs)

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        ids_, texts_, metas = self.docs.validate_new(ids, texts, metadatas)
        self.matrix = np.vstack([self.matrix, self.embedder.embed_documents(texts_)])
        self.docs.add(ids_, texts_, metas)
        return ids_

    def delete(self, ids: Sequence[str]) -> None:
        rows = self.docs.rows_of(ids)
        self.matrix = np.delete(self.matrix, rows, axis=0)
        self.docs.delete_rows(rows)

    def search(self, query: str, k: int = 10, filter: MetadataFilter | None = None) -> list[SearchHit]:
        raise AssertionError("the hybrid searched by text: it missed the VectorRanking fast path")

    def embed_query(self, query: str) -> np.ndarray:
        self.embedded_queries += 1
        return self.embedder.embed_query(query)

    def ranking(self, query_vector: np.ndarray, k: int, filter: MetadataFilter | None = None) -> dict[str, float]:
        scores = self.matrix @ np.asarray(query_vector, dtype=np.float32)
        mask = self.docs.mask(filter)
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(scores))
        best = rows[np.argsort(-scores[rows], kind="stable")][:k]
        return {self.docs.ids[r]: float(scores[r]) for r in best}

    def score_documents(self, query_vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        vector = np.asarray(query_vector, dtype=np.float32)
        return {i: float(self.matrix[self.docs.row_of[i]] @ vector) for i in ids if i in self.docs.row_of}


class StagedNumpyRanking(NumpyRanking):
    """``NumpyRanking`` that also adds in two steps (``StagedAdd``), so the hybrid can take precomputed embeddings."""

    def prepare(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> StagedBatch:
        ids_, texts_, metas = self.docs.validate_new(ids, texts, metadatas)
        vectors = self.embedder.embed_documents(texts_) if embeddings is None else embeddings
        return ids_, texts_, metas, np.asarray(vectors, dtype=np.float32)

    def commit(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]], vectors: np.ndarray) -> None:
        self.matrix = np.vstack([self.matrix, vectors])
        self.docs.add(ids, texts, metadatas)


def hybrids(fusion: str, backend: type[NumpyRanking] = NumpyRanking) -> tuple[HybridRetriever, HybridRetriever]:
    embedder = WordVectors()
    faiss = HybridRetriever(BM25Index(), DenseIndex(embedder), fusion=fusion, depth=3)
    other = HybridRetriever(BM25Index(), backend(embedder), fusion=fusion, depth=3)
    for hybrid in (faiss, other):
        hybrid.add(TEXTS, ids=IDS, metadatas=METADATAS)
    return faiss, other


def assert_same(got: list[Any], want: list[Any]) -> None:
    assert [(h.id, h.rank, h.text, h.metadata) for h in got] == [(h.id, h.rank, h.text, h.metadata) for h in want]
    for g, w in zip(got, want, strict=True):
        assert g.score == pytest.approx(w.score, abs=1e-6)
        assert g.component_ranks == w.component_ranks
        assert g.component_scores.keys() == w.component_scores.keys()
        for name, score in w.component_scores.items():
            assert g.component_scores[name] == pytest.approx(score, abs=1e-6)


def test_dense_index_implements_both_protocols() -> None:
    index = DenseIndex(WordVectors())
    assert isinstance(index, VectorRanking) and isinstance(index, StagedAdd)
    assert isinstance(NumpyRanking(WordVectors()), VectorRanking)
    assert not isinstance(NumpyRanking(WordVectors()), StagedAdd)
    assert not isinstance(NumpyRanking(WordVectors()), DenseIndex)
    assert isinstance(StagedNumpyRanking(WordVectors()), StagedAdd)


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
@pytest.mark.parametrize("filter", [None, {"topic": ["animals", "places"]}])
def test_a_protocol_backend_fuses_as_dense_index(fusion: str, filter: MetadataFilter | None) -> None:
    faiss, other = hybrids(fusion)
    for query in QUERIES:
        want = faiss.search(query, k=5, filter=filter)
        assert want  # the corpus answers every query
        assert_same(other.search(query, k=5, filter=filter), want)
        # depth 3 of 6: some hits are one component's only, so the exact fill-in scores are exercised
        assert any(None in h.component_ranks.values() for h in want) or filter is not None
    assert other.dense.embedded_queries == len(QUERIES)  # type: ignore[attr-defined]


def test_a_protocol_backend_takes_a_query_vector() -> None:
    faiss, other = hybrids("convex")
    vector = WordVectors().embed_query("Paris tower")
    assert_same(other.search("Paris tower", k=4, query_vector=vector), faiss.search("Paris tower", k=4))
    assert other.dense.embedded_queries == 0  # type: ignore[attr-defined]


def test_a_staged_protocol_backend_takes_embeddings_and_deletes_in_step() -> None:
    faiss, other = hybrids("convex", StagedNumpyRanking)
    extra = ["Foxes hunt at dusk near the city."]
    vectors = WordVectors().embed_documents(extra)
    for hybrid in (faiss, other):
        hybrid.add(extra, ids=["d6"], metadatas=[{"topic": "animals"}], embeddings=vectors)
        hybrid.delete(["d0"])
    assert len(other.dense) == len(other.sparse) == len(TEXTS)  # type: ignore[arg-type]
    assert_same(other.search("fox city", k=5), faiss.search("fox city", k=5))
    with pytest.raises(ValueError, match="embeddings can only be given with a DenseIndex"):
        hybrids("convex")[1].add(extra, ids=["d6"], embeddings=vectors)


class FailingTokenizer:
    """Fails on any text with the word 'boom' (a tokenizer failing mid-batch)."""

    def tokenize(self, text: str) -> list[str]:
        if "boom" in text:
            raise RuntimeError("tokenizer failed")
        return text.lower().split()

    def settings(self) -> dict[str, Any]:
        return {"type": "failing"}


@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_a_sparse_failure_leaves_the_dense_side_in_step(backend: str) -> None:
    dense = DenseIndex(WordVectors()) if backend == "faiss" else NumpyRanking(WordVectors())
    hybrid = HybridRetriever(BM25Index(tokenizer=FailingTokenizer()), dense)
    hybrid.add(TEXTS, ids=IDS)
    with pytest.raises(RuntimeError, match="tokenizer failed"):
        hybrid.add(["fine", "boom"], ids=["x", "y"])
    assert len(dense) == len(hybrid.sparse) == len(TEXTS)
    assert hybrid.add(["fine", "also fine"], ids=["x", "y"]) == ["x", "y"]  # the ids are free again

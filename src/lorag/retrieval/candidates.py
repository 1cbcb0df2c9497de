"""One hybrid query's candidates per component, and the exact scores that fill in each component's gaps.

``HybridRetriever`` fuses ``{id: score}`` rankings; a document one component returned and the other did not gets
the other's exact score where it can be computed, so convex normalisation sees true scores. How the rankings and
those scores are gathered depends on the dense side:

- a ``dense.VectorRanking`` (such as the FAISS ``DenseIndex``): its ranking by the query's vector, the sparse
  ranking with the exact sparse scores of the dense hits, the exact dense scores of the sparse-only hits by the same
  vector; all in memory.
- a ``stores.CandidateStore`` that can (PGVector): the sparse ranking first, then one round trip to the store for its
  top ids and scores *and* the dense scores of the sparse candidates, with no text or metadata for documents lorag
  holds (``fuse`` takes them from the sparse side); then the exact sparse scores of the dense hits.
- any other store: its search (texts and metadata included), the sparse ranking with the exact sparse scores of its
  hits, then the store's scores of the sparse-only hits (``stores.ScoringStore``), a second round trip.

The three give the same rankings and scores, in the same dict order (convex normalisation sums them in that order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lorag.retrieval import stores
from lorag.retrieval.bm25 import BM25Index
from lorag.retrieval.dense import DenseBackend, VectorRanking
from lorag.retrieval.documents import MetadataFilter, SearchHit
from lorag.retrieval.tfidf import TfidfIndex


@dataclass(frozen=True)
class Candidates:
    """What ``HybridRetriever.fuse`` takes: per-component rankings, the fill-in exact scores, the store's documents."""

    rankings: dict[str, dict[str, float]]
    exact: dict[str, dict[str, float]]
    documents: dict[str, SearchHit]


def gather(
    sparse: BM25Index | TfidfIndex,
    name: str,
    dense: DenseBackend,
    query: str,
    depth: Mapping[str, int],
    filter: MetadataFilter | None,
    query_vector: np.ndarray | None = None,
) -> Candidates:
    """Both components' top ``depth[...]`` and fill-in scores (the caller holds the retriever's lock; ``name`` is the
    sparse component's name; ``query_vector`` is required with a ``VectorRanking`` dense side such as ``DenseIndex``).

    The dense side picks the path: the fast one for a ``VectorRanking``, one round trip for a ``CandidateStore`` that
    can, else its search and (a ``ScoringStore``) the scores of the sparse-only candidates."""
    if isinstance(dense, VectorRanking):
        if query_vector is None:
            raise ValueError("a VectorRanking dense side (such as DenseIndex) needs the query's vector")
        return _by_vector(sparse, name, dense, query, depth, filter, query_vector)
    if isinstance(dense, stores.CandidateStore) and dense.candidates_supported():
        return _from_store_candidates(sparse, name, dense, query, depth, filter)
    return _from_store_search(sparse, name, dense, query, depth, filter)


def _by_vector(
    sparse: BM25Index | TfidfIndex,
    name: str,
    dense: VectorRanking,
    query: str,
    depth: Mapping[str, int],
    filter: MetadataFilter | None,
    query_vector: np.ndarray,
) -> Candidates:
    dense_top = dense.ranking(query_vector, depth["dense"], filter)
    sparse_top, sparse_exact = sparse.ranking(query, depth[name], filter, exact_for=list(dense_top))
    missing = [doc_id for doc_id in sparse_top if doc_id not in dense_top]
    dense_exact = dense.score_documents(query_vector, missing)
    return Candidates({name: sparse_top, "dense": dense_top}, {name: sparse_exact, "dense": dense_exact}, {})


def _from_store_candidates(
    sparse: BM25Index | TfidfIndex,
    name: str,
    dense: stores.CandidateStore,
    query: str,
    depth: Mapping[str, int],
    filter: MetadataFilter | None,
) -> Candidates:
    sparse_top, _ = sparse.ranking(query, depth[name], filter)
    found = dense.candidates(query, depth["dense"], filter, score_ids=list(sparse_top), held=sparse.docs.metadata_of)
    dense_top = found.ranking
    sparse_exact = sparse.score_documents(query, list(dense_top)) if dense_top else {}
    missing = [doc_id for doc_id in sparse_top if doc_id not in dense_top]
    dense_exact = {doc_id: found.scores[doc_id] for doc_id in missing if doc_id in found.scores}
    return Candidates(
        {name: sparse_top, "dense": dense_top}, {name: sparse_exact, "dense": dense_exact}, found.documents
    )


def _from_store_search(
    sparse: BM25Index | TfidfIndex,
    name: str,
    dense: DenseBackend,
    query: str,
    depth: Mapping[str, int],
    filter: MetadataFilter | None,
) -> Candidates:
    dense_top: dict[str, float] = {}
    documents: dict[str, SearchHit] = {}
    for hit in dense.search(query, depth["dense"], filter):
        if hit.id not in dense_top:  # a store may return one id twice; keep its best
            dense_top[hit.id] = hit.score
            documents[hit.id] = hit
    sparse_top, sparse_exact = sparse.ranking(query, depth[name], filter, exact_for=list(dense_top))
    missing = [doc_id for doc_id in sparse_top if doc_id not in dense_top]
    scored = dense.score_documents(query, missing) if isinstance(dense, stores.ScoringStore) and missing else {}
    dense_exact = {doc_id: scored[doc_id] for doc_id in missing if doc_id in scored}  # in rank order, as above
    return Candidates({name: sparse_top, "dense": dense_top}, {name: sparse_exact, "dense": dense_exact}, documents)

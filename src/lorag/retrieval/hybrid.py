"""``HybridRetriever``: a sparse index (BM25 or TF-IDF) and a dense backend, fused, with each component's score and
rank on every result.

The sparse component is named by its kind (``"bm25"``, or ``"tfidf"`` for a ``TfidfIndex``) in ``component_scores``,
``weights`` and ``depth``, so a result says which lexical scorer produced it. Convex defaults (``alpha=0.5``,
z-score, ``depth=200``) were the best of 36 settings on the SciFact *train* queries with BM25 and ``minilm``
(``benchmarks/tune_fusion.py``, table in ``benchmarks/results/tune_fusion.md``), never on test.
RRF keeps the literature's constant 60 and equal weights (Cormack et al. 2009).

``fusion="store"`` delegates ranking to a store that fuses lexical and vector search itself
(``lorag.retrieval.stores.NativeHybridStore``), so BM25 or full-text search runs in the database; lorag still keeps its
sparse index, the record of ids, texts and metadata that keeps add/delete in step with the store and pairs a saved
index with its collection.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from lorag.retrieval import candidates, persistence, stores
from lorag.retrieval import fusion as fusion_lib
from lorag.retrieval._locking import synchronized
from lorag.retrieval.bm25 import BM25Index
from lorag.retrieval.dense import DenseBackend, DenseIndex, StagedAdd, TextEmbedder, VectorRanking
from lorag.retrieval.documents import MetadataFilter, SearchHit, check_k, check_query
from lorag.retrieval.stores import PairedStore
from lorag.retrieval.tfidf import TfidfIndex
from lorag.retrieval.tokenization import TextTokenizer

KIND = "lorag.hybrid"
SparseIndex = BM25Index | TfidfIndex
#: The sparse sides by name (the name is also the component's name and its directory in a saved hybrid).
SPARSE: dict[str, type[BM25Index] | type[TfidfIndex]] = {"bm25": BM25Index, "tfidf": TfidfIndex}


def make_sparse(sparse: str, **kwargs: Any) -> SparseIndex:
    """An empty sparse index by name (``"bm25"`` or ``"tfidf"``); ``kwargs`` go to its constructor."""
    if sparse not in SPARSE:
        raise ValueError(f"unknown sparse index {sparse!r}; choose one of {list(SPARSE)}")
    return SPARSE[sparse](**kwargs)


def sparse_name(index: SparseIndex) -> str:
    return "tfidf" if isinstance(index, TfidfIndex) else "bm25"


#: Weight of the dense component in convex fusion (the lexical one gets ``1 - alpha``); chosen on SciFact train.
DEFAULT_ALPHA = 0.5
#: Convex score normalisation; chosen on SciFact train.
DEFAULT_NORMALIZATION = "zscore"
#: Candidates taken from each component before fusion; chosen on SciFact train.
DEFAULT_DEPTH = 200
#: The fusion that hands ranking to a store that fuses lexical and vector search itself.
STORE_FUSION = "store"


@dataclass(frozen=True)
class HybridHit:
    """One fused result: fused ``score`` and ``rank``, plus each component's own score and rank (``None`` when that
    component did not return the document within its candidate depth)."""

    id: str
    score: float
    rank: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    component_scores: dict[str, float | None] = field(default_factory=dict)
    component_ranks: dict[str, int | None] = field(default_factory=dict)


class HybridRetriever:
    """Fuse a ``BM25Index`` or ``TfidfIndex`` with a dense backend (``DenseIndex`` or a framework vector store adapter).

    Args:
        sparse: the lexical index; it also keeps the documents' texts and metadata.
        dense: a ``DenseIndex`` or any ``DenseBackend``; it must hold the same document ids. One that is also a
            ``dense.VectorRanking`` or ``dense.StagedAdd``, as ``DenseIndex`` is, gets its fast path (queries, adds).
        fusion: ``"convex"`` (default), ``"rrf"``, or ``"store"``: the store ranks and fuses by itself (see
            ``lorag.retrieval.stores.check_native_hybrid`` for the stores that can; ``ValueError`` otherwise). Its
            hits carry the store's fused score as their only component, ``"store"``.
        alpha: convex weight of the dense scores; the sparse side gets ``1 - alpha``.
        normalization: convex score normalisation, ``"zscore"`` (default) or ``"minmax"``.
        rrf_k: the RRF constant (60, as in Cormack et al. 2009).
        weights: RRF weights per component, e.g. ``{"bm25": 1.0, "dense": 2.0}`` (1 each by default).
        depth: candidates per component before fusion: one int, or ``{"bm25": n, "dense": m}`` (with
            ``fusion="store"``, the larger one is what the store takes from each of its rankings).
    """

    def __init__(
        self,
        sparse: SparseIndex,
        dense: DenseBackend,
        *,
        fusion: str = "convex",
        alpha: float = DEFAULT_ALPHA,
        normalization: str = DEFAULT_NORMALIZATION,
        rrf_k: float = 60.0,
        weights: Mapping[str, float] | None = None,
        depth: int | Mapping[str, int] = DEFAULT_DEPTH,
    ) -> None:
        if fusion == STORE_FUSION:
            stores.check_native_hybrid(dense)
        elif fusion not in fusion_lib.FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {[*fusion_lib.FUSIONS, STORE_FUSION]}")
        self.fusion = fusion
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if normalization not in fusion_lib.NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {normalization!r}; choose one of {list(fusion_lib.NORMALIZATIONS)}"
            )
        if rrf_k <= 0:
            raise ValueError(f"rrf_k must be positive, got {rrf_k}")
        if not isinstance(sparse, (BM25Index, TfidfIndex)):
            raise TypeError(f"sparse must be a BM25Index or a TfidfIndex, got {type(sparse).__name__}")
        if not isinstance(dense, DenseBackend):
            raise TypeError(f"dense must have add/delete/search (a DenseBackend), got {type(dense).__name__}")
        self.sparse = sparse
        self.sparse_name = sparse_name(sparse)
        self.components = (self.sparse_name, "dense")
        self.dense = dense
        self._lock = threading.RLock()
        self.alpha = float(alpha)
        self.normalization = normalization
        self.rrf_k = float(rrf_k)
        self.weights = {c: float((weights or {}).get(c, 1.0)) for c in self.components}
        unknown = set(weights or {}) - set(self.components)
        if unknown:
            raise ValueError(f"unknown components in weights: {sorted(unknown)}; choose from {list(self.components)}")
        depths = dict.fromkeys(self.components, depth) if isinstance(depth, int) else dict(depth)
        if set(depths) != set(self.components) or any(not isinstance(d, int) or d < 1 for d in depths.values()):
            raise ValueError(
                f"depth must be a positive int or {{{self.sparse_name!r}: int, 'dense': int}}, got {depth!r}"
            )
        self.depth: dict[str, int] = depths  # type: ignore[assignment]

    @property
    def bm25(self) -> SparseIndex:
        """The sparse index, whatever its kind (the name predates ``TfidfIndex``; ``sparse`` is the same object)."""
        return self.sparse

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedder: TextEmbedder,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        embeddings: np.ndarray | None = None,
        sparse: str = "bm25",
        sparse_kwargs: Mapping[str, Any] | None = None,
        dense_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Build a sparse index (``sparse="bm25"`` or ``"tfidf"``, ``sparse_kwargs`` to its constructor) and a FAISS
        ``DenseIndex`` over the same documents (``embeddings`` skips embedding them)."""
        index = make_sparse(sparse, **(sparse_kwargs or {}))
        retriever = cls(index, DenseIndex(embedder, **(dense_kwargs or {})), **kwargs)
        retriever.add(texts, ids=ids, metadatas=metadatas, embeddings=embeddings)
        return retriever

    def __len__(self) -> int:
        return len(self.sparse)

    def settings(self) -> dict[str, Any]:
        return {
            "fusion": self.fusion,
            "alpha": self.alpha,
            "normalization": self.normalization,
            "rrf_k": self.rrf_k,
            "weights": self.weights,
            "depth": self.depth,
        }

    # ---------------------------------------------------------------------------------------------------- documents
    @synchronized
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> list[str]:
        """Add documents to both sides; everything is checked first, so a bad batch changes neither.

        ``embeddings`` skips embedding them; it needs a dense side that adds in two steps (``dense.StagedAdd``, such
        as ``DenseIndex``), which also checks and embeds the batch before either side changes.
        """
        ids_, texts_, metas = self.sparse.docs.validate_new(ids, texts, metadatas)
        if isinstance(self.dense, StagedAdd):
            self.dense.commit(*self.dense.prepare(texts_, ids_, metas, embeddings))
        elif embeddings is not None:
            raise ValueError(
                "embeddings can only be given with a DenseIndex (or another dense.StagedAdd); vector stores embed "
                "themselves"
            )
        else:
            self.dense.add(texts_, ids=ids_, metadatas=metas)
        try:
            self.sparse.add_validated(ids_, texts_, metas)
        except BaseException:
            self.dense.delete(ids_)  # keep the dense side in step with the sparse one
            raise
        return ids_

    @synchronized
    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id from both sides; an unknown id raises ``KeyError`` and nothing changes."""
        self.sparse.validate_delete(ids)
        self.dense.delete(ids)  # a DenseIndex checks every id before it deletes any
        self.sparse.delete(ids)

    # ----------------------------------------------------------------------------------------------------- querying
    def search(
        self,
        query: str,
        k: int = 10,
        filter: MetadataFilter | None = None,
        *,
        query_vector: np.ndarray | None = None,
    ) -> list[HybridHit]:
        """The top ``k`` fused results; ``filter`` applies inside each component, before any cut.

        ``query_vector`` skips embedding the query (with a dense side that ranks by vector, ``dense.VectorRanking``,
        such as the FAISS ``DenseIndex``; stores embed it themselves). A document one component returned and the other
        did not gets the other's exact score when that component can compute it (the sparse side always; a
        ``VectorRanking``; a store that can score given documents, ``stores.ScoringStore``, such as PGVector,
        PGVectorStore and Qdrant, in one more request, or in the same one as its search for a
        ``stores.CandidateStore`` such as PGVector): convex normalisation then sees true scores rather than a guessed
        floor, and every result reports every component's score (its rank stays ``None`` outside that component's
        candidates). How each dense side's candidates are gathered: ``lorag.retrieval.candidates``.
        """
        check_query(query)
        k = check_k(k)
        if k == 0 or not len(self.sparse):
            return []
        depth = {name: max(k, d) for name, d in self.depth.items()}
        if isinstance(self.dense, VectorRanking):
            if query_vector is None:  # outside the lock: embedding is the slow part and needs no index state
                query_vector = self.dense.embed_query(query)
        elif query_vector is not None:
            raise ValueError(
                "query_vector can only be given with a DenseIndex (or another dense.VectorRanking); vector stores "
                "embed themselves"
            )
        if self.fusion == STORE_FUSION:
            with self._lock:  # lorag's side read in the state the store was last kept in step with
                return self._store_search(query, k, filter, max(depth.values()))
        with self._lock:
            found = candidates.gather(self.sparse, self.sparse_name, self.dense, query, depth, filter, query_vector)
            return self.fuse(found.rankings, k, found.exact, found.documents)

    def _store_search(self, query: str, k: int, filter: MetadataFilter | None, depth: int) -> list[HybridHit]:
        """The store's fused ranking, ties broken by id as ``fuse`` does (stores break them by storage order, which a
        restart may change); texts and metadata from lorag's side where it holds the document."""
        store = cast(stores.NativeHybridStore, self.dense)  # __init__ checked that it can (check_native_hybrid)
        hits = store.hybrid_search(query, k, filter, depth=depth)
        docs = self.sparse.docs
        out = []
        for rank, hit in enumerate(sorted(hits[:k], key=lambda h: (-h.score, h.id)), start=1):
            row = docs.row_of.get(hit.id)
            text, meta = (hit.text, dict(hit.metadata)) if row is None else (docs.texts[row], dict(docs.metadatas[row]))
            out.append(HybridHit(hit.id, float(hit.score), rank, text, meta, {"store": hit.score}, {"store": rank}))
        return out

    def fuse(
        self,
        rankings: Mapping[str, Mapping[str, float]],
        k: int,
        exact: Mapping[str, Mapping[str, float]] | None = None,
        documents: Mapping[str, SearchHit] | None = None,
    ) -> list[HybridHit]:
        """Fuse per-component rankings (``{id: score}``, best first) into the top ``k``, one result per id.

        ``exact`` optionally gives, per component, the true score of documents that component did not return; they
        join its scores for convex fusion and appear in ``component_scores`` (with rank ``None``). Texts and metadata
        come from the sparse index, else from ``documents`` (hits of an external vector store).
        """
        ranks = {name: {doc_id: r for r, doc_id in enumerate(ranking, start=1)} for name, ranking in rankings.items()}
        scores = {name: {**(exact or {}).get(name, {}), **ranking} for name, ranking in rankings.items()}
        if self.fusion == "rrf":
            fused = fusion_lib.rrf(rankings, self.weights, self.rrf_k)
        else:
            fused = fusion_lib.convex(
                scores, {"dense": self.alpha, self.sparse_name: 1.0 - self.alpha}, normalization=self.normalization
            )
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
        docs = self.sparse.docs
        out = []
        for rank, (doc_id, score) in enumerate(best, start=1):
            row = docs.row_of.get(doc_id)
            if row is None:
                hit = (documents or {}).get(doc_id)
                text, meta = (hit.text, dict(hit.metadata)) if hit is not None else ("", {})
            else:
                text, meta = docs.texts[row], dict(docs.metadatas[row])
            out.append(
                HybridHit(
                    doc_id,
                    float(score),
                    rank,
                    text,
                    meta,
                    {name: scores[name].get(doc_id) for name in rankings},
                    {name: ranks[name].get(doc_id) for name in rankings},
                )
            )
        return out

    # -------------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Save the sparse index, the FAISS index and the fusion settings atomically into one directory.

        Over an external store (``lorag.retrieval.stores.PairedStore``) the store keeps its vectors: lorag saves its
        sparse side and the store's pairing (kind, collection, dimension), checked on ``load``.
        """
        dense = self.dense
        # Concrete class, not a protocol, here and in write: the "dense" directory is DenseIndex's own files (FAISS
        # and JSON), which load reads back with DenseIndex.read_from.
        if not isinstance(dense, (DenseIndex, PairedStore)):
            raise TypeError(
                f"a HybridRetriever over {type(dense).__name__} cannot be saved: its dense side must be a lorag "
                "DenseIndex or say which store it pairs with (pairing() and missing(), lorag.retrieval.stores)"
            )

        def write(directory: Path) -> None:
            (directory / self.sparse_name).mkdir()
            self.sparse.write_to(directory / self.sparse_name)
            extra: dict[str, Any] = {"sparse": self.sparse_name}
            if isinstance(dense, DenseIndex):
                (directory / "dense").mkdir()
                dense.write_to(directory / "dense")
            else:
                extra["store"] = dense.pairing()
            persistence.write_manifest(directory, KIND, {**self.settings(), **extra})

        with self._lock:  # both sides saved in one consistent state
            persistence.save_atomically(path, write)

    @classmethod
    def load(
        cls,
        path: str | Path,
        embedder: TextEmbedder | None = None,
        tokenizer: TextTokenizer | None = None,
        *,
        store: PairedStore | None = None,
    ) -> HybridRetriever:
        """Load a saved hybrid index; ``embedder`` (and ``tokenizer`` if given) must match the saved settings.

        An index saved over an external store loads with ``store=`` (the same store and collection, else
        ``StorePairingError``) instead of ``embedder``.
        """
        directory = persistence.live_snapshot(path)
        settings = persistence.read_manifest(directory, KIND)
        name = settings.pop("sparse", "bm25")  # hybrids saved before TF-IDF existed have BM25 and no "sparse" key
        if name not in SPARSE:
            raise persistence.IndexFormatError(f"{directory} names an unknown sparse index {name!r}")
        pairing = settings.pop("store", None)
        if pairing is not None and (store is None or embedder is not None):
            raise ValueError(
                f"{path} pairs with {pairing.get('store')} collection {pairing.get('collection')!r}: load it with "
                "store= (a backend over that collection) instead of an embedder"
            )
        if pairing is None and (store is not None or embedder is None):
            raise ValueError(f"{path} holds a FAISS dense index: load it with the embedder it was built with")
        sparse = SPARSE[name].read_from(directory / name, tokenizer)
        if store is not None:
            stores.check_pairing(pairing, store, sparse.docs.ids, str(path))
            return cls(sparse, store, **settings)  # type: ignore[arg-type]
        dense = DenseIndex.read_from(directory / "dense", embedder)  # type: ignore[arg-type]
        if sparse.docs.ids != dense.docs.ids:
            raise persistence.IndexFormatError(
                f"{directory} is inconsistent: the {name} and dense sides hold different documents"
            )
        return cls(sparse, dense, **settings)

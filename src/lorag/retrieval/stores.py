"""A hybrid whose dense side is an external vector store (pgvector, Qdrant...): its pairing record and in-step errors.

The store persists its own vectors; lorag saves only its sparse side and fusion settings, plus a *pairing*: which
store kind and collection the saved index goes with, and the vectors' dimension. Loading against another store,
collection or dimension is refused (``StorePairingError``) instead of fusing BM25 over one corpus with vectors of
another; a sample of lorag's ids is then looked up in the store, so an emptied collection or another database is
caught too.

A store that can rank by vector and score given documents in one round trip, returning ids and scores only
(``CandidateStore``, e.g. PGVector), lets ``HybridRetriever`` take texts and metadata from its own side instead of
shipping them from the store for every candidate.

``fusion="store"`` hands the fusion itself to a store that ranks lexically and by vector and fuses the two
(``NativeHybridStore``: PGVectorStore's full-text search, Qdrant's sparse vectors); ``check_native_hybrid`` refuses a
dense side that cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lorag.retrieval.documents import MetadataFilter, SearchHit
from lorag.retrieval.persistence import SettingsMismatchError

#: At most this many of lorag's ids are looked up in the store on load (evenly spread, so the check stays cheap).
PAIRING_SAMPLE = 256


@runtime_checkable
class PairedStore(Protocol):
    """A dense backend over an external store that can say what it is and which documents it lacks."""

    def pairing(self) -> dict[str, Any]:
        """JSON-safe identity of the store: at least ``store`` (its kind), ``collection`` and ``dimension``."""
        ...

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that the store does not hold."""
        ...


@runtime_checkable
class NativeHybridStore(Protocol):
    """A dense backend over a store that can also rank lexically and fuse both rankings itself."""

    def native_hybrid_problem(self) -> str | None:
        """``None`` when the store can fuse lexical and vector search itself, else why it cannot."""
        ...

    def hybrid_search(
        self, query: str, k: int = 10, filter: MetadataFilter | None = None, *, depth: int = 200
    ) -> list[SearchHit]:
        """The store's own fused top ``k`` (``depth`` candidates from each of its rankings); ``filter`` holds."""
        ...


@runtime_checkable
class ScoringStore(Protocol):
    """A dense backend over a store that can score given documents for a query (one search restricted to them)."""

    def score_documents(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """The dense score of each of ``ids`` the store holds, on the scale of its search scores."""
        ...


#: lorag's metadata of a document it holds, ``None`` for one it does not (``DocumentStore.metadata_of``).
HeldMetadata = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class StoreCandidates:
    """A store's dense candidates for one query, gathered in one round trip.

    ``ranking``: its top documents by vector as ``{id: score}``, best first (the filter holding, as ``search``).
    ``scores``: the scores of the asked documents it holds (the lexical side's candidates), whether ranked or not.
    ``documents``: hits with text and metadata for ranked documents lorag does not hold, the only ones whose text the
    store had to send.
    """

    ranking: dict[str, float]
    scores: dict[str, float]
    documents: dict[str, SearchHit] = field(default_factory=dict)


@runtime_checkable
class CandidateStore(Protocol):
    """A dense backend over a store that can return its top ids by vector together with the scores of given documents,
    in one round trip and without texts or metadata.

    ``HybridRetriever`` already holds the text and metadata of every document it added, and would otherwise ask twice:
    a search that ships the candidates' texts, then the scores of its lexical side's other candidates.
    """

    def candidates_supported(self) -> bool:
        """Whether this store can (else the caller searches and scores as for any ``ScoringStore``)."""
        ...

    def candidates(
        self,
        query: str,
        k: int,
        filter: MetadataFilter | None = None,
        *,
        score_ids: Sequence[str] = (),
        held: HeldMetadata,
    ) -> StoreCandidates:
        """The top ``k`` by vector and the scores of ``score_ids``; ``filter`` holds before the cut, checked on
        ``held``'s metadata for documents lorag holds (what its lexical side filters on), on the store's otherwise."""
        ...


def check_native_hybrid(dense: object) -> None:
    """Refuse ``fusion="store"`` over a dense side that cannot fuse by itself, saying which stores can."""
    how = (
        "fusion='store' needs a store that fuses lexical and vector search itself: langchain-postgres PGVectorStore "
        "with a HybridSearchConfig, or langchain-qdrant QdrantVectorStore with retrieval_mode=RetrievalMode.HYBRID "
        "(through langchain_lorag.vectorstores.LangChainVectorStoreBackend); use fusion='convex' or 'rrf' for "
        "lorag's own BM25 and fusion"
    )
    if not isinstance(dense, NativeHybridStore):
        raise ValueError(f"{how}; a {type(dense).__name__} cannot")
    problem = dense.native_hybrid_problem()
    if problem is not None:
        raise ValueError(f"{how}; this one cannot: {problem}")


class StorePairingError(SettingsMismatchError):
    """A saved lorag index was loaded against a store other than the one it was saved with."""


class StoreSyncError(RuntimeError):
    """A store failed mid-change and lorag could not undo its part there: ``ids`` may be half-written in the store.

    lorag's own side is unchanged; ``repair`` says what to run once the store answers again.
    """

    def __init__(self, message: str, ids: Sequence[str], repair: str) -> None:
        super().__init__(f"{message}; {repair}")
        self.ids = list(ids)
        self.repair = repair


def check_pairing(saved: Mapping[str, Any], store: PairedStore, ids: Sequence[str], where: str) -> None:
    """Refuse ``store`` unless it is the saved pairing and holds a sample of ``ids`` (lorag's documents)."""
    given = store.pairing()
    diffs = [
        f"{key}: saved {saved.get(key)!r}, given {given.get(key)!r}" for key in saved if saved[key] != given.get(key)
    ]
    if diffs:
        raise StorePairingError(
            f"{where} pairs with {saved.get('store')} collection {saved.get('collection')!r}, not this store "
            f"({'; '.join(diffs)}); load it with the store and collection it was saved with"
        )
    step = max(1, len(ids) // PAIRING_SAMPLE)
    sample = list(ids[::step][:PAIRING_SAMPLE])
    lacking = store.missing(sample) if sample else []
    if lacking:
        raise StorePairingError(
            f"{given.get('store')} collection {given.get('collection')!r} lacks {len(lacking)} of {len(sample)} "
            f"sampled documents of {where} (e.g. {lacking[:5]}): it was emptied, or this is another database; "
            "re-add those documents to the store or rebuild the index"
        )

"""``DocumentIndex``: a folder of documents kept in a persisted hybrid index, re-indexed incrementally.

Each file is remembered by the sha256 of its text. A re-run chunks and embeds only new or changed files, deletes
the chunks of changed or removed files, and leaves the rest untouched; chunk embeddings also go through an
``EmbeddingCache`` inside the index directory, so even a rebuilt index never embeds the same chunk twice. Every
save writes a fresh snapshot and swaps a pointer (``lorag.retrieval.persistence``), so an interrupted run leaves
the previous index loadable and nothing half-written. A sync holds the directory's write lock (``lorag.locking``) from
reading the index to swapping the pointer, so two syncs never interleave; loading takes no lock.
The ``exclude`` patterns of a sync are kept in the manifest, so a later sync that gives none (``lorag ask``)
leaves the same paths out rather than bringing them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lorag.chunking import Splitter, reporting_progress
from lorag.embedding import Embedder, EmbeddingCache, EmbeddingCacheError
from lorag.embedding.onnx_backend import Backend
from lorag.locking import exclusive
from lorag.rag.document_chunks import chunk_document, default_splitters
from lorag.rag.loaders import DEFAULT_MAX_FILE_MB, LoadReport, SourceDocument, load_folder
from lorag.rag.ray_sync import RayExecutor
from lorag.retrieval import HybridHit, HybridRetriever, persistence

logger = logging.getLogger(__name__)

KIND = "lorag.document_index"
RETRIEVER_DIR = "retriever"
CACHE_FILE = "embeddings.sqlite"

#: Chunks per embedding call while syncing: the embedding bar moves this often.
EMBED_BLOCK = 512
#: Seconds a step runs before its progress bar appears, so a quick sync prints nothing.
PROGRESS_DELAY_S = 1.0


@dataclass
class SyncReport:
    """What one ``DocumentIndex.sync`` did."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    #: The ``exclude`` patterns this sync applied, and whether they were the ones kept with the index (none given).
    exclude: list[str] = field(default_factory=list)
    exclude_kept: bool = False
    chunks_added: int = 0
    chunks_embedded: int = 0

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def _checked_exclude(patterns: object, snapshot: Path) -> list[str]:
    """The manifest's ``exclude`` patterns (none in an index saved before they were kept)."""
    if patterns is None:
        return []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise persistence.IndexFormatError(
            f"{snapshot / persistence.MANIFEST} is corrupted: 'exclude' must be a list of patterns"
        )
    return patterns


def stored_exclude(index_dir: str | Path) -> list[str]:
    """The ``exclude`` patterns kept with the index in ``index_dir`` (``[]`` when there is none yet), read without
    loading the embedder, so a command can check its input against them before anything loads."""
    if not (Path(index_dir).expanduser() / persistence.CURRENT).exists():
        return []

    def read(snapshot: Path) -> list[str]:
        return _checked_exclude(persistence.read_manifest(snapshot, KIND).get("exclude"), snapshot)

    return persistence.read_live(Path(index_dir).expanduser(), read)


def _checked_files(files: object, retriever: HybridRetriever, snapshot: Path) -> dict[str, dict[str, Any]]:
    """The manifest's table of files, refused unless it lists exactly the chunks of the retriever saved with it.

    The manifest's checksum catches damage; this catches a manifest rewritten consistently but wrongly, which would
    otherwise surface later as a KeyError or "ids already in the index" in the middle of a sync.
    """
    manifest = snapshot / persistence.MANIFEST
    if not isinstance(files, dict) or not all(
        isinstance(e, dict)
        and isinstance(e.get("sha256"), str)
        and isinstance(e.get("chunk_ids"), list)
        and all(isinstance(i, str) for i in e["chunk_ids"])
        for e in files.values()
    ):
        raise persistence.IndexFormatError(
            f"{manifest} is corrupted: 'files' must map each source file to its sha256 and chunk_ids"
        )
    listed = Counter(i for e in files.values() for i in e["chunk_ids"])
    held = set(retriever.bm25.docs.ids)
    problems = [
        f"{what}: {sorted(ids)[:3]}"
        for what, ids in (
            ("chunk ids it lists that the index lacks", listed.keys() - held),
            ("chunks in the index that no file lists", held - listed.keys()),
            ("chunk ids listed twice", {i for i, n in listed.items() if n > 1}),
        )
        if ids
    ]
    if problems:
        pointer = snapshot.parent / persistence.CURRENT
        raise persistence.IndexFormatError(
            f"{manifest} does not match the index saved with it ({'; '.join(problems)}); delete {pointer} and "
            "build the index again (cached embeddings make that quick)"
        )
    return files


class DocumentIndex:
    """A hybrid (BM25 + dense) index over the chunks of a folder's documents, persisted in ``index_dir``.

    Args:
        index_dir: where the index lives; created on first sync, reused afterwards.
        embedder: a model reference (``"minilm"``) or an ``Embedder``; it must match the one the index was built with.
        backend: the runtime of an embedder given by reference (``torch``, ``onnx``, ``onnx-fp32``; see ``Embedder``).
            ``openvino`` needs calibration texts: pass an ``Embedder`` for it.
        splitters: splitters by document kind (``"markdown"``, ``"text"``); defaults to ``default_splitters``.
        show_progress: progress bars on stderr while a sync chunks (in characters, through each long file) and
            embeds (in chunks), shown once a step takes over ``PROGRESS_DELAY_S``. They replace the embedding
            model's own per-batch bars, which an embedder given by reference never draws.
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        embedder: str | Embedder = "minilm",
        backend: Backend = "torch",
        splitters: dict[str, Splitter] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.index_dir = Path(index_dir).expanduser()
        if self.index_dir.exists() and not self.index_dir.is_dir():
            raise NotADirectoryError(f"index dir {str(index_dir)!r} is a file")
        self.show_progress = show_progress
        self._cache: EmbeddingCache | None = None
        if isinstance(embedder, str):
            self._cache = self._open_cache()
            embedder = Embedder(embedder, cache=self._cache, device="cpu", backend=backend)
        self.embedder = embedder
        self.splitters = splitters or default_splitters(embedder)
        self.files: dict[str, dict[str, Any]] = {}
        self.exclude: list[str] = []  # the patterns the last sync applied, kept for the next (``sync``)
        self.retriever: HybridRetriever | None = None
        self._live: str | None = None  # the snapshot ``files`` and ``retriever`` were loaded from
        if (self.index_dir / persistence.CURRENT).exists():
            self._load()

    # ---------------------------------------------------------------------------------------------- persistence
    def _load(self) -> None:
        def read(snapshot: Path) -> tuple[str, dict[str, dict[str, Any]], list[str], HybridRetriever]:
            settings = persistence.read_manifest(snapshot, KIND)
            retriever = HybridRetriever.load(snapshot / RETRIEVER_DIR, self.embedder)
            files = _checked_files(settings.get("files"), retriever, snapshot)
            return snapshot.name, files, _checked_exclude(settings.get("exclude"), snapshot), retriever

        self._live, self.files, self.exclude, self.retriever = persistence.read_live(self.index_dir, read)

    def _refresh(self) -> None:
        """Catch up with a sync another process finished since this object loaded (called holding the lock)."""
        if not (self.index_dir / persistence.CURRENT).exists():
            self._live, self.files, self.exclude, self.retriever = None, {}, [], None
        elif persistence.live_snapshot(self.index_dir).name != self._live:
            self._load()

    def _save(self, retriever: HybridRetriever, files: dict[str, dict[str, Any]], exclude: list[str]) -> None:
        def write(directory: Path) -> None:
            retriever.save(directory / RETRIEVER_DIR)
            persistence.write_manifest(directory, KIND, {"files": files, "exclude": exclude})

        persistence.save_atomically(self.index_dir, write)

    def __len__(self) -> int:
        return 0 if self.retriever is None else len(self.retriever)

    # --------------------------------------------------------------------------------------------------- indexing
    def chunk(self, doc: SourceDocument) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Chunk one document: ids, texts and metadata (source, offsets, section or page)."""
        return chunk_document(doc, self.splitters)

    def sync(
        self,
        folder: str | Path,
        *,
        on_skip: Callable[[str, str], None] | None = None,
        wait: float | None = 0.0,
        follow_links: bool = False,
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
        exclude: Sequence[str] | None = None,
        executor: Literal["local", "ray"] | RayExecutor = "local",
    ) -> SyncReport:
        """Bring the index in line with ``folder``: index new and changed files, drop removed ones.

        Args:
            folder: the documents folder.
            on_skip: called with ``(path, reason)`` for each file not indexed.
            wait: seconds to wait while another process writes this index; ``0`` fails at once, ``None`` waits as
                long as it takes. A sync that waited starts from what the other one saved.
            exclude: gitignore patterns of paths in ``folder`` to leave out (``load_folder``); files they match that
                the index holds are dropped from it, as removed files are. They are kept with the index: ``None``
                applies the ones the last sync kept (so a later ``lorag ask`` does not bring the files back), ``[]``
                clears them.
            executor: ``"local"`` chunks and embeds in this process; ``"ray"`` (``pip install "lorag[ray]"``) shards
                both over a local Ray runtime, a ``RayExecutor`` over the cluster it names. Same index either way.

        Raises:
            DirectoryBusyError: another process still writes the index after ``wait`` seconds (a ``ValueError``).
            FileNotFoundError / ValueError: the folder is missing or holds no readable document; the index on disk
                is left as it was.
            RayUnreachableError: the Ray address did not answer (a ``ConnectionError``); nothing was locked or written.
        """
        if executor not in ("local", "ray") and not isinstance(executor, RayExecutor):
            raise ValueError(f"executor must be 'local', 'ray' or a RayExecutor, got {executor!r}")
        if self._cache is not None and self._cache.read_only:
            raise EmbeddingCacheError(
                f"embedding cache {self._cache.path} is read-only: make it and {self.index_dir} writable by this "
                "user, or use another index directory"
            )
        remote = RayExecutor() if executor == "ray" else executor
        # Ray is reached before the lock is taken, so a cluster that does not answer leaves the index untouched.
        with (
            remote if isinstance(remote, RayExecutor) else contextlib.nullcontext(),
            exclusive(self.index_dir, wait=wait),
        ):
            self._refresh()
            return self._sync(
                folder,
                on_skip,
                follow_links=follow_links,
                max_file_mb=max_file_mb,
                exclude=exclude,
                remote=remote if isinstance(remote, RayExecutor) else None,
            )

    def _sync(
        self,
        folder: str | Path,
        on_skip: Callable[[str, str], None] | None,
        *,
        follow_links: bool,
        max_file_mb: float,
        exclude: Sequence[str] | None,
        remote: RayExecutor | None,
    ) -> SyncReport:
        patterns = list(self.exclude) if exclude is None else [p for p in exclude if p.strip()]
        loaded: LoadReport = load_folder(folder, follow_links=follow_links, max_file_mb=max_file_mb, exclude=patterns)
        report = SyncReport(
            skipped=list(loaded.skipped),
            excluded=list(loaded.excluded),
            exclude=patterns,
            exclude_kept=exclude is None and bool(patterns),
        )
        if on_skip:
            for path, why in loaded.skipped:
                on_skip(path, why)
        current = {doc.source: doc for doc in loaded.documents}
        stale_ids: list[str] = []
        for source, entry in self.files.items():
            doc = current.get(source)
            if doc is None:
                report.removed.append(source)
                stale_ids.extend(entry["chunk_ids"])
            elif doc.sha256 != entry["sha256"]:
                stale_ids.extend(entry["chunk_ids"])
        fresh: list[SourceDocument] = []
        for source, doc in current.items():
            known = self.files.get(source)
            if known is None:
                report.added.append(source)
                fresh.append(doc)
            elif known["sha256"] != doc.sha256:
                report.changed.append(source)
                fresh.append(doc)
            else:
                report.unchanged.append(source)
        if not report.modified and self.retriever is not None and patterns == self.exclude:
            return report

        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        files = {s: e for s, e in self.files.items() if s in current and s not in report.changed}
        for doc, (d_ids, d_texts, d_metas) in zip(fresh, self._chunk_all(fresh, remote), strict=True):
            files[doc.source] = {"sha256": doc.sha256, "chunk_ids": d_ids}
            ids += d_ids
            texts += d_texts
            metas += d_metas
        before = len(self._cache) if self._cache is not None else 0
        with remote.encoding(self.embedder, self.splitters) if remote is not None else contextlib.nullcontext():
            vectors = self._embed(texts)
        report.chunks_embedded = (len(self._cache) - before) if self._cache is not None else len(texts)
        report.chunks_added = len(ids)

        if self.retriever is None:
            retriever = HybridRetriever.from_texts(texts, self.embedder, ids=ids, metadatas=metas, embeddings=vectors)
        else:
            # Work on a reloaded copy, so a failure below leaves this object and the disk as they were.
            retriever = HybridRetriever.load(persistence.live_snapshot(self.index_dir) / RETRIEVER_DIR, self.embedder)
            if stale_ids:
                retriever.delete(stale_ids)
            if ids:
                retriever.add(texts, ids=ids, metadatas=metas, embeddings=vectors)
        self._save(retriever, files, patterns)
        self._live = persistence.live_snapshot(self.index_dir).name
        self.retriever, self.files, self.exclude = retriever, files, patterns
        logger.info(
            "index %s: %d added, %d changed, %d removed, %d unchanged files; %d chunks embedded",
            self.index_dir,
            len(report.added),
            len(report.changed),
            len(report.removed),
            len(report.unchanged),
            report.chunks_embedded,
        )
        return report

    def _chunk_all(
        self, docs: list[SourceDocument], remote: RayExecutor | None
    ) -> list[tuple[list[str], list[str], list[dict[str, Any]]]]:
        """Each document's chunks in order, here (the bar moves through long files) or on the Ray workers."""
        with self._bar(sum(len(doc.text) for doc in docs), "chunking", "char") as bar:
            if remote is not None and docs:
                return remote.chunk(docs, self.embedder, self.splitters, bar.update)
            chunked = []
            for doc in docs:

                def reached(offset: int, base: int = bar.n) -> None:  # an offset into this document
                    bar.update(max(0, base + offset - bar.n))

                with reporting_progress(reached):
                    chunked.append(self.chunk(doc))
                reached(len(doc.text))
            return chunked

    def _bar(self, total: int, desc: str, unit: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            file=sys.stderr,
            delay=PROGRESS_DELAY_S,
            disable=not self.show_progress,
        )

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``embed_documents`` in blocks of ``EMBED_BLOCK`` chunks, so the bar moves while a large folder embeds."""
        if not texts:
            return self.embedder.embed_documents(texts)
        with self._bar(len(texts), "embedding", "chunk") as bar:
            blocks = []
            for start in range(0, len(texts), EMBED_BLOCK):
                blocks.append(self.embedder.embed_documents(texts[start : start + EMBED_BLOCK]))
                bar.update(len(blocks[-1]))
        return np.concatenate(blocks)

    # -------------------------------------------------------------------------------------------------- querying
    def _open_cache(self) -> EmbeddingCache | None:
        """The index's embedding cache; read-only in a folder this user cannot write, so the index can still be
        queried there (a sync is refused, with an error naming the folder)."""
        cache = self.index_dir / CACHE_FILE
        if self.index_dir.is_dir() and not os.access(self.index_dir, os.W_OK):
            logger.info("index %s is read-only: querying only, its embedding cache is not written", self.index_dir)
            return EmbeddingCache(cache, read_only=True) if cache.is_file() else None
        self.index_dir.mkdir(parents=True, exist_ok=True)
        return EmbeddingCache(cache)

    def search(self, query: str, k: int = 5) -> list[HybridHit]:
        if self.retriever is None:
            raise RuntimeError(f"the index at {self.index_dir} is empty: sync a folder first")
        return self.retriever.search(query, k)

    def sources(self) -> Sequence[str]:
        return sorted(self.files)

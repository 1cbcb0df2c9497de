"""Crash-safe index directories: versioned snapshots, checksummed files and a pointer swapped atomically.

Layout of a saved index at ``path``::

    path/CURRENT             one line: the name of the live snapshot (replaced with os.replace, which is atomic)
    path/snap-<uuid>/        a complete snapshot: manifest.json (kind, format version, settings, sha256 of each file)

A save writes a new snapshot, flushes it, then swaps ``CURRENT``; an interruption at any moment leaves ``CURRENT``
naming a complete snapshot, so the previous index stays loadable. A save holds the directory's write lock
(``lorag.locking``), so it is the only writer there: every snapshot ``CURRENT`` does not name is a replaced one or a
killed writer's leftover, and is removed after the swap. Readers take no lock: ``read_live`` retries when the snapshot
it was reading is removed under it. The manifest carries its own checksum, so an edited manifest is refused like an
edited data file. Nothing is pickled: arrays go to ``.npz`` read with ``allow_pickle=False``, FAISS indexes to
FAISS's own format, the rest JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lorag.atomic import fsync_dir, write_atomically
from lorag.locking import exclusive

#: Bumped when the on-disk layout changes incompatibly; loading another version is an error.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
_LIVE_READ_TRIES = 10

T = TypeVar("T")


class IndexFormatError(ValueError):
    """A saved index directory is missing, truncated, corrupted, of another kind or of another format version."""


class SettingsMismatchError(ValueError):
    """An index was loaded with settings (embedder, tokenizer) that contradict the ones it was saved with."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_checksum(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(directory: Path, kind: str, settings: dict[str, Any]) -> None:
    """Checksum every file already in ``directory`` (recursively) and write the manifest beside them."""
    files = {
        str(p.relative_to(directory)): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"kind": kind, "format_version": FORMAT_VERSION, "settings": settings, "files": files}
    manifest["checksum"] = _manifest_checksum(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def read_manifest(directory: Path, kind: str) -> dict[str, Any]:
    """Read and verify a manifest: its own checksum, kind, format version and every file's checksum.

    Returns its ``settings``. Manifests saved before lorag checksummed them have no ``checksum`` and are read as
    before; their files are still verified.
    """
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise IndexFormatError(f"{directory} is not a saved lorag index: {MANIFEST} is missing") from err
    except (OSError, ValueError) as err:  # ValueError: JSON or UTF-8
        raise IndexFormatError(f"{manifest_path} is corrupted: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        found = manifest.get("kind") if isinstance(manifest, dict) else None
        raise IndexFormatError(f"{directory} holds a {found!r} index, expected {kind!r}")
    if "checksum" in manifest and manifest["checksum"] != _manifest_checksum(manifest):
        raise IndexFormatError(f"{manifest_path} does not match its checksum: it was edited or damaged")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{directory} has format version {manifest.get('format_version')!r}; this lorag reads {FORMAT_VERSION}"
        )
    files, settings = manifest.get("files"), manifest.get("settings")
    if not isinstance(files, dict) or not isinstance(settings, dict):
        raise IndexFormatError(f"{manifest_path} is corrupted: 'files' and 'settings' must be JSON objects")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise IndexFormatError(f"{directory} is truncated: {name} is missing")
        if _sha256(path) != digest:
            raise IndexFormatError(f"{directory} is corrupted: {name} does not match its checksum")
    return dict(settings)


def save_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Run ``write(snapshot_dir)`` into a fresh snapshot under ``path``, then make it the live one atomically.

    Holds the write lock of ``path`` throughout, waiting for another writer to finish first.
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"cannot save an index to {root}: it is a file")
    with exclusive(root):
        root.mkdir(parents=True, exist_ok=True)
        name = f"snap-{uuid.uuid4().hex}"
        snapshot = root / name
        snapshot.mkdir()
        try:
            write(snapshot)
            for p in snapshot.rglob("*"):
                if p.is_file():
                    with p.open("rb+") as fh:
                        os.fsync(fh.fileno())
            fsync_dir(snapshot)
            write_atomically(root / CURRENT, name + "\n", durable=True)
        except BaseException:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise
        for old in root.glob("snap-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(f".{CURRENT}.*.tmp"):  # a killed writer's pointer (lorag.atomic's naming)
            stale.unlink(missing_ok=True)


def live_snapshot(path: str | Path) -> Path:
    """The directory of the live snapshot of a saved index, or a clear error when there is none."""
    root = Path(path)
    if not root.is_dir():
        raise IndexFormatError(f"no saved index at {root}: not a directory")
    pointer = root / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise IndexFormatError(f"{root} is not a saved lorag index: {CURRENT} is missing") from err
    except (OSError, ValueError) as err:  # ValueError: not UTF-8
        raise IndexFormatError(f"{pointer} cannot be read ({err}); delete it and build the index again") from err
    snapshot = root / name
    if not name.startswith("snap-") or "/" in name or not snapshot.is_dir():
        raise IndexFormatError(
            f"{pointer} names {name[:80]!r}, which is not a snapshot in {root}; delete {pointer} and build the index "
            "again"
        )
    return snapshot


def read_live(path: str | Path, read: Callable[[Path], T]) -> T:
    """``read(live_snapshot(path))``, again from the new live snapshot if a writer swapped and removed it meanwhile.

    Readers take no lock (a long write must not hold them up), so the snapshot a reader is in the middle of can be
    removed by the writer that replaced it: the read then fails with a missing file while ``CURRENT`` names another
    snapshot, which is complete. A failure while ``CURRENT`` is unchanged is real damage and is raised.
    """
    for _ in range(_LIVE_READ_TRIES):
        snapshot = live_snapshot(path)
        try:
            return read(snapshot)
        except (IndexFormatError, OSError):
            with contextlib.suppress(IndexFormatError):
                if live_snapshot(path) != snapshot:
                    continue
            raise
    raise IndexFormatError(f"{path} was replaced {_LIVE_READ_TRIES} times while being read; try again")


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without pickle; a damaged file is an ``IndexFormatError``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # OSError, ValueError, EOFError, zipfile.BadZipFile: all mean a damaged file
        raise IndexFormatError(f"{path} cannot be read: {err}") from err


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IndexFormatError(f"{path} cannot be read: {err}") from err


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def check_settings(what: str, saved: dict[str, Any], given: dict[str, Any]) -> None:
    """Raise ``SettingsMismatchError`` naming each key where ``given`` contradicts ``saved``."""
    diffs = [
        f"{key}: saved {saved.get(key)!r}, given {given.get(key)!r}"
        for key in sorted(set(saved) | set(given))
        if saved.get(key) != given.get(key)
    ]
    if diffs:
        shown = "; ".join(d if len(d) < 200 else d[:200] + "..." for d in diffs)
        raise SettingsMismatchError(f"the index was saved with another {what}: {shown}")

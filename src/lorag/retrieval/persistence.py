"""Crash-safe index directories: versioned snapshots, checksummed files and a pointer swapped atomically.

Layout of a saved index at ``path``::

    path/CURRENT             one line: the name of the live snapshot (replaced with os.replace, which is atomic)
    path/snap-<uuid>/        a complete snapshot: manifest.json (kind, format version, settings, sha256 of each file)

A save writes a new snapshot, flushes it, then swaps ``CURRENT``; an interruption at any moment leaves ``CURRENT``
naming a complete snapshot, so the previous index stays loadable. Older snapshots are removed after the swap. Nothing
is pickled: arrays go to ``.npz`` read with ``allow_pickle=False``, FAISS indexes to FAISS's own format, the rest JSON.
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
from typing import Any

import numpy as np

#: Bumped when the on-disk layout changes incompatibly; loading another version is an error.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"


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


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for fsync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(directory: Path, kind: str, settings: dict[str, Any]) -> None:
    """Checksum every file already in ``directory`` (recursively) and write the manifest beside them."""
    files = {
        str(p.relative_to(directory)): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"kind": kind, "format_version": FORMAT_VERSION, "settings": settings, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def read_manifest(directory: Path, kind: str) -> dict[str, Any]:
    """Read and verify a manifest: kind, format version and every file's checksum. Returns its ``settings``."""
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise IndexFormatError(f"{directory} is not a saved lorag index: {MANIFEST} is missing") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{manifest_path} is corrupted: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        found = manifest.get("kind") if isinstance(manifest, dict) else None
        raise IndexFormatError(f"{directory} holds a {found!r} index, expected {kind!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{directory} has format version {manifest.get('format_version')!r}; this lorag reads {FORMAT_VERSION}"
        )
    for name, digest in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise IndexFormatError(f"{directory} is truncated: {name} is missing")
        if _sha256(path) != digest:
            raise IndexFormatError(f"{directory} is corrupted: {name} does not match its checksum")
    return dict(manifest["settings"])


def save_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Run ``write(snapshot_dir)`` into a fresh snapshot under ``path``, then make it the live one atomically."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"cannot save an index to {root}: it is a file")
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
        _fsync_dir(snapshot)
        pointer = root / f".{CURRENT}.{name}.tmp"
        with pointer.open("w", encoding="utf-8") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer, root / CURRENT)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(snapshot, ignore_errors=True)
        raise
    for old in root.glob("snap-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(f".{CURRENT}.*.tmp"):
        stale.unlink(missing_ok=True)


def live_snapshot(path: str | Path) -> Path:
    """The directory of the live snapshot of a saved index, or a clear error when there is none."""
    root = Path(path)
    if not root.is_dir():
        raise IndexFormatError(f"no saved index at {root}: not a directory")
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise IndexFormatError(f"{root} is not a saved lorag index: {CURRENT} is missing") from err
    snapshot = root / name
    if not name.startswith("snap-") or "/" in name or not snapshot.is_dir():
        raise IndexFormatError(f"{root} is corrupted: {CURRENT} names {name!r}, which is not a snapshot there")
    return snapshot


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

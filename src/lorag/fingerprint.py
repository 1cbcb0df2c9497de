"""Content fingerprints of model directories, so caches and adapters never mix up retrained weights."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=256)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 * 1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime)."""
    st = Path(path).stat()
    return _hash_file(str(path), st.st_size, st.st_mtime_ns)


def directory_fingerprint(model_dir: str | Path) -> str:
    """Content hash (16 hex chars) of a local model directory: every file's path and bytes.

    Hidden files and lorag's own ``lorag_source.json`` stamp are left out. A reference that is not a local
    directory (a hub id) is fingerprinted by its name.
    """
    root = Path(model_dir)
    if not root.is_dir():
        return hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == "lorag_source.json" or any(part.startswith(".") for part in rel.split("/")):
            continue
        h.update(f"{rel}:{file_sha256(path)}\n".encode())
    return h.hexdigest()[:16]

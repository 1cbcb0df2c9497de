"""Atomic file writes: into a temporary file beside the target, renamed over it only when complete.

Readers (and a run that starts after a crash) see the whole old file or the whole new one, never half of each:
``os.replace`` within one directory is atomic. The temporary file sits in the target's own directory, since a rename
across filesystems is not atomic, and is named ``.<name>.<random>.tmp``: two writers never share one, and a killed
writer's leftover is recognisable (an index's clean-up globs for it). It is created with mode ``0o666`` less the
umask, as ``open(path, "w")`` would create the target, not private as ``tempfile.mkstemp`` makes it.

``durable=True`` also flushes the bytes and then the directory entry to disk before returning, for a file whose loss
after a power cut would matter (an index's ``CURRENT`` pointer); without it a crash of the process is covered, not
one of the machine.

Swapping a whole directory is a different job (a directory cannot be renamed over a non-empty one) and stays with
the places that do it: ``lorag.export._output``, ``lorag.models``, the OpenVINO backend, index snapshots.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "fsync_dir", "write_atomically"]


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` for a writer that wants a file name (a GGUF writer,
    ``shutil.copy2``); on success it replaces ``path``, on any error it is removed and ``path`` is left as it was."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        if durable:
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def write_atomically(path: str | Path, data: str | bytes, *, durable: bool = False) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` so that no reader ever sees it half written."""
    with atomic_path(path, durable=durable) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename, a new file) to disk; a no-op where the filesystem does not allow it."""
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for fsync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

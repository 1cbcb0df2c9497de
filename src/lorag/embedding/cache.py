"""A persistent embedding cache keyed by model fingerprint and text content, so no text is embedded twice.

Stored in SQLite (standard library, atomic transactions, safe across processes) as raw float32 bytes: no pickle.

The cache is an optimisation only, so it never makes anything wrong: a damaged file (not SQLite, or malformed) is
moved aside with a warning and started afresh, and each vector is stored with a sha256 of its key and bytes, so an
entry that was altered (or written before lorag checked them) is recomputed instead of being used. A cache that cannot
be used now (locked by another process, read-only, a disk error or a full disk) is an ``EmbeddingCacheError`` naming
the file and what to do; the file is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)"
# SQLite's own messages for SQLITE_NOTADB and SQLITE_CORRUPT (``sqlite_errorcode`` needs Python 3.11).
_DAMAGED = ("file is not a database", "database disk image is malformed")
#: Seconds to wait for another process's write to the cache before giving up.
DEFAULT_TIMEOUT_S = 60.0


class EmbeddingCacheError(ValueError):
    """The cache file cannot be used now; nothing in it was changed.

    A ``ValueError`` like lorag's other "this index cannot be used" errors (``IndexFormatError``,
    ``DirectoryBusyError``), so every command reports it without a traceback.
    """


def _advice(path: Path, err: sqlite3.Error, timeout: float) -> str:
    """What went wrong with the cache at ``path`` and what the user can do, from SQLite's message."""
    message = str(err)
    if "is locked" in message:  # SQLITE_BUSY / SQLITE_LOCKED
        return (
            f"embedding cache {path} is locked by another process (waited {timeout:g} s): let it finish, or close "
            "the program holding the file, and try again"
        )
    if "readonly" in message:  # SQLITE_READONLY: "attempt to write a readonly database"
        return (
            f"embedding cache {path} is read-only: make it and {path.parent} writable by this user, or use another "
            "index directory"
        )
    if "unable to open" in message:  # SQLITE_CANTOPEN
        return (
            f"embedding cache {path} cannot be opened: it must be a file in a folder this user can write "
            f"({path.parent}); fix that, or use another index directory"
        )
    if "disk is full" in message:  # SQLITE_FULL
        return f"embedding cache {path}: the disk is full; free space on it and try again"
    if "disk I/O error" in message:  # SQLITE_IOERR
        return (
            f"embedding cache {path}: disk I/O error (a failing disk, a file size limit, or a network file system "
            "without locking); check that the disk can be written and try again"
        )
    return f"embedding cache {path}: {message}; it only saves re-embedding: delete it and lorag rebuilds it"


def text_key(namespace: str, text: str) -> str:
    """The cache key of ``text`` under ``namespace`` (model fingerprint plus every setting that changes vectors)."""
    return hashlib.sha256(f"{namespace}\x00{text}".encode()).hexdigest()


def _digest(key: str, blob: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\x00" + blob).digest()


def _is_damage(err: sqlite3.DatabaseError) -> bool:
    return any(message in str(err) for message in _DAMAGED)


class EmbeddingCache:
    """Float32 vectors by key in one SQLite file; ``get_many`` / ``put_many`` work in batches.

    Args:
        path: the SQLite file; created with its folder if missing.
        timeout: seconds to wait while another process writes the file.
        read_only: only read the file, which must exist (an index on a read-only mount can still be queried);
            ``put_many`` then keeps nothing, so new texts are embedded again next time.

    Raises:
        EmbeddingCacheError: the file cannot be used (locked, read-only, disk error); the message says what to do.
    """

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S, read_only: bool = False) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only:
            self._conn = self._connect_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EmbeddingCacheError(
                f"cannot create the embedding cache's folder {self.path.parent} ({err.strerror}): make its parent "
                "writable by this user, or use another index directory"
            ) from err
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as err:
            if not _is_damage(err):
                raise EmbeddingCacheError(_advice(self.path, err, timeout)) from err
            self._conn = self._start_afresh(err)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=self.timeout)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(embeddings)")}
            if "digest" not in columns:  # a cache from before digests: its rows fail the check and are recomputed
                conn.execute("ALTER TABLE embeddings ADD COLUMN digest BLOB")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """The file as it is, never written: ``immutable`` needs no lock or ``-shm`` file, which a read-only folder
        could not hold. A damaged or foreign file is a clear error (it cannot be moved aside here)."""
        if not self.path.is_file():
            raise EmbeddingCacheError(f"embedding cache {self.path} does not exist; it cannot be opened read-only")
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
            )
            conn.execute("SELECT key, dim, vec, digest FROM embeddings LIMIT 1").fetchall()
        except sqlite3.DatabaseError as err:
            state = "is damaged" if _is_damage(err) else "cannot be read"
            raise EmbeddingCacheError(
                f"embedding cache {self.path} {state} ({err}) and cannot be moved aside (read-only): make "
                f"{self.path.parent} writable by this user, or delete the file; lorag rebuilds it"
            ) from err
        return conn

    def _start_afresh(self, err: sqlite3.DatabaseError) -> sqlite3.Connection:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as moving:
            raise EmbeddingCacheError(
                f"embedding cache {self.path} is damaged ({err}) and cannot be moved aside ({moving.strerror}): "
                f"make {self.path.parent} writable by this user, or delete the file; lorag rebuilds it"
            ) from err
        logger.warning("embedding cache %s is damaged (%s): moved to %s and started afresh", self.path, err, aside)
        try:
            return self._connect()
        except sqlite3.DatabaseError as again:
            raise EmbeddingCacheError(_advice(self.path, again, self.timeout)) from again

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(connection)`` under the lock; once more on a fresh file if the cache turns out damaged."""
        with self._lock:
            try:
                try:
                    return operation(self._conn)
                except sqlite3.DatabaseError as err:
                    if not _is_damage(err):
                        raise
                    self._conn.close()
                    self._conn = self._start_afresh(err)
                    return operation(self._conn)
            except sqlite3.DatabaseError as err:
                raise EmbeddingCacheError(_advice(self.path, err, self.timeout)) from err

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``keys``; entries whose digest does not match are left out, so they are recomputed."""
        rejected = 0

        def read(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
            nonlocal rejected
            found: dict[str, np.ndarray] = {}
            rejected = 0
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, dim, vec, digest FROM embeddings WHERE key IN ({marks})"
                for key, dim, blob, digest in conn.execute(query, chunk):
                    if isinstance(blob, bytes) and len(blob) == 4 * dim and digest == _digest(key, blob):
                        found[key] = np.frombuffer(blob, dtype=np.float32)
                    elif digest is not None:
                        rejected += 1
            return found

        found = self._run(read)
        if rejected:
            logger.warning("embedding cache %s: %d entries did not match their digest; recomputed", self.path, rejected)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self.read_only:
            return
        rows = []
        for key, vec in items.items():
            blob = np.ascontiguousarray(vec, dtype=np.float32).tobytes()
            rows.append((key, int(vec.shape[0]), blob, _digest(key, blob)))

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO embeddings (key, dim, vec, digest) VALUES (?, ?, ?, ?)", rows)

        self._run(write)

    def __len__(self) -> int:
        return self._run(lambda conn: int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

"""An embedding cache that cannot be used now (locked, read-only, disk error) is a clear error naming the file and
what to do, never a traceback, and the file is left as it was; a damaged one is moved aside (test_damaged_cache)."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import EmbeddingCache, EmbeddingCacheError
from tests.reliability.helpers import open_index, unprivileged, write_docs

VECTOR = np.arange(8, dtype=np.float32)


def _cache_with_one_vector(path: Path) -> None:
    cache = EmbeddingCache(path)
    cache.put_many({"kept": VECTOR})
    cache.close()  # the last connection checkpoints: one file, no -wal or -shm


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(code: str, *args: str, as_user: bool = False, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    prelude = "import resource, signal, sys\n"
    if limit_bytes is not None:  # writes past the limit fail with EFBIG (the signal ignored), as on a failing disk
        prelude += "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        prelude += f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))\n"
    argv = [sys.executable, "-c", prelude + code, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(unprivileged(argv) if as_user else argv, capture_output=True, text=True, env=env)


def test_a_cache_another_connection_is_writing_is_a_locked_error_and_stays_intact(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite"
    _cache_with_one_vector(path)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # a write lock, as another process in the middle of a write holds it
    holder.execute("INSERT INTO embeddings (key, dim, vec) VALUES ('other', 1, x'00000000')")
    cache = EmbeddingCache(path, timeout=0.2)
    with pytest.raises(EmbeddingCacheError) as err:
        cache.put_many({"new": VECTOR})
    assert str(err.value) == (
        f"embedding cache {path} is locked by another process (waited 0.2 s): let it finish, or close the program "
        "holding the file, and try again"
    )
    holder.rollback()
    holder.close()
    assert np.array_equal(cache.get_many(["kept", "new"])["kept"], VECTOR) and len(cache) == 1
    cache.put_many({"new": VECTOR})  # free again: works
    assert len(cache) == 2


def test_a_disk_error_while_writing_is_a_clear_error_and_the_cache_stays_intact(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite"
    _cache_with_one_vector(path)
    code = (
        "import numpy as np\nfrom lorag.embedding import EmbeddingCache, EmbeddingCacheError\n"
        "cache = EmbeddingCache(sys.argv[1])\n"
        "try:\n    cache.put_many({f'k{i}': np.ones(384, np.float32) for i in range(2000)})\n"
        "except EmbeddingCacheError as err:\n    print(err)\n"
    )
    done = _run(code, str(path), limit_bytes=path.stat().st_size + 64 * 1024)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"embedding cache {path}: disk I/O error (a failing disk, a file size limit, or a network file system without "
        "locking); check that the disk can be written and try again"
    )
    cache = EmbeddingCache(path)
    assert len(cache) == 1 and np.array_equal(cache.get_many(["kept"])["kept"], VECTOR)


def test_a_read_only_cache_file_is_a_clear_error_and_stays_intact(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite"
    _cache_with_one_vector(path)
    before = path.read_bytes()
    path.chmod(0o444)
    code = (
        "import numpy as np\nfrom lorag.embedding import EmbeddingCache, EmbeddingCacheError\n"
        "try:\n    EmbeddingCache(sys.argv[1]).put_many({'new': np.ones(8, np.float32)})\n"
        "except EmbeddingCacheError as err:\n    print(err)\n"
    )
    done = _run(code, str(path), as_user=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"embedding cache {path} is read-only: make it and {tmp_path} writable by this user, or use another index "
        "directory"
    )
    assert path.read_bytes() == before


def test_a_read_only_index_answers_queries_and_refuses_a_sync(tmp_path: Path, tiny_st_dir: Path) -> None:
    """An index in a read-only folder: searched with its cache read as is; ``lorag index`` refuses to sync it."""
    docs = write_docs(tmp_path / "docs", 2)
    folder = tmp_path / "idx"
    open_index(folder, tiny_st_dir).sync(docs)
    gc.collect()  # closes the index's cache, as its process ending would: no -wal or -shm left
    before = _files(folder)
    folder.chmod(0o555)
    code = "from lorag.cli import main\nsys.argv = ['lorag', *sys.argv[1:]]\nmain()\n"
    index = ["index", "--docs", str(docs), "--index-dir", str(folder), "--embedder", str(tiny_st_dir)]
    search = "from lorag.rag.index import DocumentIndex\n" + (
        f"hits = DocumentIndex({str(folder)!r}, embedder={str(tiny_st_dir)!r}).search('topic 1', 2)\n"
        "print(len(hits), hits[0].text[:30])\n"
    )
    try:
        done = _run(code, *index, as_user=True)
        found = _run(search, as_user=True)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    cache = folder / "embeddings.sqlite"
    assert f"error: embedding cache {cache} is read-only: make it and {folder} writable by this user" in done.stderr
    assert found.returncode == 0 and found.stdout.startswith("2 "), found.stderr
    assert _files(folder) == before


def test_a_damaged_cache_that_cannot_be_moved_aside_is_a_clear_error(tmp_path: Path, tiny_st_dir: Path) -> None:
    """A file of garbage bytes is normally moved aside and rebuilt; in a read-only index folder it cannot be."""
    docs = write_docs(tmp_path / "docs", 2)
    folder = tmp_path / "idx"
    open_index(folder, tiny_st_dir).sync(docs)
    gc.collect()
    cache = folder / "embeddings.sqlite"
    cache.write_bytes(b"garbage, not SQLite " * 400)
    before = _files(folder)
    folder.chmod(0o555)
    code = "from lorag.cli import main\nsys.argv = ['lorag', *sys.argv[1:]]\nmain()\n"
    args = ["ask", "what?", "--index-dir", str(folder), "--embedder", str(tiny_st_dir)]
    try:
        done = _run(code, *args, as_user=True)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert (
        f"error: embedding cache {cache} is damaged (file is not a database) and cannot be moved aside (read-only)"
        in done.stderr
    )
    assert f"make {folder} writable by this user, or delete the file; lorag rebuilds it" in done.stderr
    assert _files(folder) == before

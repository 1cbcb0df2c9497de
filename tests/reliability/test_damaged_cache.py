"""The embedding cache is an optimisation only: a damaged file is moved aside and rebuilt, an altered vector is
recomputed, and neither ever reaches the index or the caller."""

from __future__ import annotations

import gc
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import Embedder, EmbeddingCache
from tests.reliability.helpers import contents, open_index, write_docs


def _vectors(n: int, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"key{i}": rng.standard_normal(dim).astype(np.float32) for i in range(n)}


def test_a_file_that_is_not_a_database_is_moved_aside_and_the_index_still_works(
    tmp_path: Path, tiny_st_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = write_docs(tmp_path / "docs", 3)
    open_index(tmp_path / "idx", tiny_st_dir).sync(docs)
    expected = contents(tmp_path / "idx", tiny_st_dir)
    cache = tmp_path / "idx" / "embeddings.sqlite"
    gc.collect()  # closes the caches of the indexes above, as their processes ending would
    assert not Path(f"{cache}-wal").exists()
    cache.write_bytes(b"this is not SQLite " * 500)
    with caplog.at_level(logging.WARNING, logger="lorag"):
        index = open_index(tmp_path / "idx", tiny_st_dir)
    assert f"embedding cache {cache} is damaged" in caplog.text
    (aside,) = (tmp_path / "idx").glob("embeddings.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"this is not SQLite")
    assert contents(tmp_path / "idx", tiny_st_dir) == expected
    write_docs(docs, 3, version=2)
    report = index.sync(docs)
    assert report.chunks_embedded == report.chunks_added > 0  # the fresh cache had none of them


def test_pages_damaged_after_opening_are_a_warning_and_a_fresh_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    vectors = _vectors(3000)
    writer = EmbeddingCache(path)
    writer.put_many(vectors)
    writer.close()
    cache = EmbeddingCache(path)  # opened while intact, then damaged under it
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with path.open("r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(b"\xff" * 4096 * 20)
    with caplog.at_level(logging.WARNING, logger="lorag"):
        found = cache.get_many(list(vectors))
    assert found == {} and "is damaged" in caplog.text and "malformed" in caplog.text
    cache.put_many({"key0": vectors["key0"]})
    assert len(cache) == 1 and np.array_equal(cache.get_many(["key0"])["key0"], vectors["key0"])


def test_an_altered_vector_is_recomputed_not_used(
    tmp_path: Path, tiny_st_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    texts = ["CORS is allowed for listed origins.", "The server listens on port 8000."]
    truth = Embedder(str(tiny_st_dir), device="cpu").embed_documents(texts)
    Embedder(str(tiny_st_dir), device="cpu", cache=EmbeddingCache(path)).embed_documents(texts)
    with sqlite3.connect(path) as conn:  # every vector replaced by one of the right size, digests left alone
        conn.execute("UPDATE embeddings SET vec = ?", (np.full(truth.shape[1], 0.1, np.float32).tobytes(),))
    with caplog.at_level(logging.WARNING, logger="lorag"):
        again = Embedder(str(tiny_st_dir), device="cpu", cache=EmbeddingCache(path)).embed_documents(texts)
    np.testing.assert_allclose(again, truth, rtol=1e-5, atol=1e-6)
    assert "2 entries did not match their digest; recomputed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lorag"):  # the entries were rewritten: no warning the next time
        Embedder(str(tiny_st_dir), device="cpu", cache=EmbeddingCache(path)).embed_documents(texts)
    assert "digest" not in caplog.text


def test_a_cache_from_before_digests_is_upgraded_and_its_entries_recomputed_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.sqlite"
    vectors = _vectors(2)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)")
        conn.executemany("INSERT INTO embeddings VALUES (?, ?, ?)", [(k, 8, v.tobytes()) for k, v in vectors.items()])
    cache = EmbeddingCache(path)
    with caplog.at_level(logging.WARNING, logger="lorag"):
        assert cache.get_many(list(vectors)) == {}
    assert caplog.text == ""
    cache.put_many(vectors)
    assert set(cache.get_many(list(vectors))) == set(vectors)


def test_an_entry_of_the_wrong_size_or_type_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    vectors = _vectors(3)
    EmbeddingCache(path).put_many(vectors)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE embeddings SET vec = x'00' WHERE key = 'key0'")
        conn.execute("UPDATE embeddings SET vec = 'text' WHERE key = 'key1'")
    assert set(EmbeddingCache(path).get_many(list(vectors))) == {"key2"}

"""DocumentIndex.sync(executor="ray"): a build sharded over a local 2-CPU Ray runtime equals a single-process one;
an address that does not answer fails fast and writes nothing; ``lorag index --ray``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lorag.embedding import Embedder, EmbeddingCache
from lorag.rag.index import DocumentIndex
from lorag.rag.ray_sync import RayExecutor, RayUnreachableError, probe
from lorag.retrieval.dense import DenseIndex

ray = pytest.importorskip("ray", reason='the Ray tests need ray: pip install "lorag[ray]"')


@pytest.fixture(scope="module")
def local_ray() -> Iterator[RayExecutor]:
    """One local runtime for the module (2 CPUs, 127.0.0.1, no dashboard), shut down after its last test."""
    executor = RayExecutor(workers=2)
    with executor:
        assert ray.cluster_resources()["CPU"] == 2
        assert "node:127.0.0.1" in ray.cluster_resources()
        yield executor
    assert not ray.is_initialized()


@pytest.fixture
def many_docs(docs: Path) -> Path:
    """The conftest folder plus enough files that every worker gets several shards."""
    for i in range(12):
        (docs / f"topic{i}.md").write_text(
            f"# Topic {i}\n\nSection about worker {i} and shard {i * 7}.\n\n## Details\n\n"
            + " ".join(f"word{i}x{j}" for j in range(150))
            + "\n"
        )
    return docs


def _index(index_dir: Path, st: Path) -> DocumentIndex:
    embedder = Embedder(str(st), device="cpu", cache=EmbeddingCache(index_dir / "embeddings.sqlite"))
    return DocumentIndex(index_dir, embedder=embedder, show_progress=False)


def _rows(index: DocumentIndex) -> list[tuple[str, str, dict[str, object]]]:
    assert index.retriever is not None
    docs = index.retriever.bm25.docs
    return sorted(zip(docs.ids, docs.texts, docs.metadatas, strict=True), key=lambda r: r[0])


def _vectors(index: DocumentIndex) -> np.ndarray:
    """The stored dense vectors, in chunk-id order."""
    assert index.retriever is not None
    dense = index.retriever.dense
    assert isinstance(dense, DenseIndex)
    order = np.argsort(dense.docs.ids)
    return dense.vectors()[order]


def _files(index_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(index_dir)): p.read_bytes() for p in sorted(index_dir.rglob("*")) if p.is_file()}


def test_sharded_build_equals_single_process_build(
    local_ray: RayExecutor, many_docs: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    local = _index(tmp_path / "local", tiny_st_dir)
    local.sync(many_docs)
    sharded = _index(tmp_path / "ray", tiny_st_dir)
    report = sharded.sync(many_docs, executor=local_ray)

    assert report.chunks_embedded == report.chunks_added == len(local) > 20
    assert _rows(sharded) == _rows(local)
    assert sharded.files == local.files
    reloaded = _index(tmp_path / "ray", tiny_st_dir)
    assert _rows(reloaded) == _rows(local)
    np.testing.assert_allclose(_vectors(reloaded), _vectors(local), atol=1e-5)
    assert len(EmbeddingCache(tmp_path / "ray" / "embeddings.sqlite")) == len(local)  # the driver filled its cache
    for query in ("allowed origins", "worker 7 shard", "port 8000"):
        got = [(h.id, round(h.score, 5)) for h in reloaded.search(query, k=5)]
        want = [(h.id, round(h.score, 5)) for h in local.search(query, k=5)]
        assert got == want


def test_unreachable_address_fails_within_the_timeout_and_writes_nothing(
    docs: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    index.sync(docs)
    before = _files(tmp_path / "idx")
    (docs / "tasks.md").write_text("# Changed\n\nnew text that must not be indexed\n")

    for address in ("127.0.0.1:1", "192.0.2.123:6379"):  # a closed port; a TEST-NET address nothing answers from
        started = time.monotonic()
        with pytest.raises(RayUnreachableError, match=f"Ray at '{address}' does not answer within 2 s"):
            index.sync(docs, executor=RayExecutor(address, timeout=2))
        assert time.monotonic() - started < 10
    assert _files(tmp_path / "idx") == before
    assert index.files["tasks.md"]["sha256"] == _index(tmp_path / "idx", tiny_st_dir).files["tasks.md"]["sha256"]


class _BrokenSplitter:
    """Raises in the Ray worker that chunks with it."""

    def split(self, text: str, metadata: object = None) -> list[object]:
        raise RuntimeError("splitter crashed in the worker")


def test_a_failing_worker_leaves_the_index_as_it_was(
    local_ray: RayExecutor, docs: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    index.sync(docs, executor=local_ray)
    before = _files(tmp_path / "idx")
    (docs / "tasks.md").write_text("# Changed\n\nnew text that must not be indexed\n")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    index.splitters = {"text": _BrokenSplitter(), "markdown": _BrokenSplitter()}  # type: ignore[dict-item]
    with pytest.raises(Exception, match="splitter crashed in the worker"):
        index.sync(docs, executor=local_ray)
    assert _files(tmp_path / "idx") == before


def test_bad_executor_and_address_are_clear_errors(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    with pytest.raises(ValueError, match="executor must be 'local', 'ray' or a RayExecutor, got 'dask'"):
        index.sync(docs, executor="dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not host:port"):
        probe("head:port", timeout=1)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        RayExecutor(workers=0)
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_cli_index_ray(local_ray: RayExecutor, many_docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    from lorag.cli import app

    args = ["index", "--docs", str(many_docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    result = CliRunner().invoke(app, [*args, "--ray"])
    assert result.exit_code == 0, result.output
    assert "15 added" in result.output and ray.is_initialized()  # the module's runtime was used, not shut down
    assert _rows(_index(tmp_path / "idx", tiny_st_dir)) == _rows(_cli_local(many_docs, tmp_path, tiny_st_dir))

    dead = CliRunner().invoke(app, [*args, "--ray-address", "127.0.0.1:1"])
    assert dead.exit_code == 2 and "does not answer" in dead.output


def _cli_local(docs: Path, tmp_path: Path, st: Path) -> DocumentIndex:
    index = _index(tmp_path / "local", st)
    index.sync(docs)
    return index

"""A sync shows lorag's own progress on stderr (chunking in characters, embedding in chunks) and never the
embedding model's per-batch bars; ``show_progress=False`` and ``lorag ask --json`` show none."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.rag import index as index_module
from lorag.rag.index import DocumentIndex


@pytest.fixture
def long_docs(tmp_path: Path) -> Path:
    """One long file and a few small ones: hundreds of chunks, many embedding batches."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.txt").write_text(" ".join(f"Sentence {i} is about topic {i % 7}." for i in range(1500)))
    for i in range(3):
        (folder / f"short{i}.md").write_text(f"# Short {i}\n\nA short note number {i}.\n")
    return folder


@pytest.fixture
def bars_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars appear after PROGRESS_DELAY_S; a tiny model syncs faster than that."""
    monkeypatch.setattr(index_module, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(index_module, "EMBED_BLOCK", 64)


def test_a_sync_shows_chunking_and_embedding_bars_and_no_batches_bar(
    long_docs: Path, tmp_path: Path, tiny_st_dir: Path, bars_at_once: None, capsys: pytest.CaptureFixture[str]
) -> None:
    DocumentIndex(tmp_path / "idx", embedder=str(tiny_st_dir)).sync(long_docs)
    err = capsys.readouterr().err
    assert "chunking: 100%" in err and "embedding: 100%" in err
    assert "Batches" not in err  # the model's own bar, drawn per embedding call of more than 32 texts


def test_no_bar_without_show_progress(
    long_docs: Path, tmp_path: Path, tiny_st_dir: Path, bars_at_once: None, capsys: pytest.CaptureFixture[str]
) -> None:
    DocumentIndex(tmp_path / "idx", embedder=str(tiny_st_dir), show_progress=False).sync(long_docs)
    err = capsys.readouterr().err
    assert "chunking" not in err and "embedding" not in err and "Batches" not in err


def test_cli_index_shows_progress_and_ask_json_does_not(
    long_docs: Path, tmp_path: Path, tiny_st_dir: Path, bars_at_once: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from lorag.cli import app
    from lorag.cli.documents import IndexBackend, open_index

    args = ["index", "--docs", str(long_docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "chunking" in done.stderr and "embedding" in done.stderr and "Batches" not in done.stderr

    (long_docs / "long.txt").write_text(" ".join(f"Changed sentence {i}." for i in range(1500)))
    capsys.readouterr()
    open_index(long_docs, tmp_path / "idx", str(tiny_st_dir), IndexBackend.torch, quiet=True)  # as ask --json
    err = capsys.readouterr().err
    assert "chunking" not in err and "embedding" not in err and "Batches" not in err

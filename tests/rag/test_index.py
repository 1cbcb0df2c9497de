"""DocumentIndex: incremental re-indexing by content hash, persistence, and failures that leave the disk intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.embedding import Embedder, EmbeddingCache
from lorag.rag.index import DocumentIndex, stored_exclude


def _index(index_dir: Path, st: Path) -> DocumentIndex:
    embedder = Embedder(str(st), device="cpu", cache=EmbeddingCache(index_dir / "embeddings.sqlite"))
    return DocumentIndex(index_dir, embedder=embedder, show_progress=False)


def _snapshot(index_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(index_dir)): p.read_bytes()
        for p in sorted(index_dir.rglob("*"))
        if p.is_file() and not p.name.startswith("embeddings.sqlite")
    }


def test_first_sync_indexes_and_reports_skipped(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    report = index.sync(docs)
    assert sorted(report.added) == ["guide/cors.md", "notes.txt", "tasks.md"]
    assert [p for p, _ in report.skipped] == ["logo.png"]
    assert report.chunks_embedded == report.chunks_added == len(index) > 0
    assert index.retriever is not None
    (top,) = index.retriever.bm25.search("allowed origins", 1)
    assert top.metadata["source"] == "guide/cors.md" and top.metadata["section"].startswith("CORS")
    for hit in index.search("allowed origins", k=10):
        meta = hit.metadata
        assert (docs / meta["source"]).read_text()[meta["start"] : meta["end"]] == hit.text


def test_unchanged_folder_embeds_nothing_and_one_change_reembeds_only_its_chunks(
    docs: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    first = index.sync(docs)
    reopened = _index(tmp_path / "idx", tiny_st_dir)
    again = reopened.sync(docs)
    assert again.chunks_embedded == 0 and not again.modified
    assert sorted(again.unchanged) == sorted(first.added)

    (docs / "tasks.md").write_text("# Background tasks\n\nThey run after the response, in the same process.\n")
    changed = reopened.sync(docs)
    assert changed.changed == ["tasks.md"] and changed.added == [] and changed.removed == []
    tasks_chunks = len(reopened.files["tasks.md"]["chunk_ids"])
    assert changed.chunks_embedded == tasks_chunks
    assert len(reopened) == len(index)  # same number of chunks: the old tasks.md chunks were deleted
    assert reopened.retriever is not None
    assert "same process" in reopened.retriever.bm25.search("same process", 1)[0].text

    (docs / "notes.txt").unlink()
    removed = _index(tmp_path / "idx", tiny_st_dir).sync(docs)
    assert removed.removed == ["notes.txt"] and removed.chunks_embedded == 0


def test_excluded_paths_are_not_indexed_and_leave_the_index_when_excluded_later(
    docs: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    first = index.sync(docs, exclude=["guide/"])
    assert sorted(first.added) == ["notes.txt", "tasks.md"] and first.excluded == ["guide/"]
    assert all(hit.metadata["source"] != "guide/cors.md" for hit in index.search("allowed origins", k=10))
    both = index.sync(docs, exclude=[])  # the folder's paths come back once no pattern leaves them out
    assert both.added == ["guide/cors.md"] and both.excluded == [] and both.exclude == []
    again = _index(tmp_path / "idx", tiny_st_dir).sync(docs, exclude=["*.txt"])
    assert again.removed == ["notes.txt"] and again.excluded == ["notes.txt"] and again.chunks_embedded == 0


def test_exclude_patterns_are_kept_for_the_syncs_that_give_none(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    _index(tmp_path / "idx", tiny_st_dir).sync(docs, exclude=["guide/", " "])
    assert stored_exclude(tmp_path / "idx") == ["guide/"] and stored_exclude(tmp_path / "none") == []
    reopened = _index(tmp_path / "idx", tiny_st_dir)  # as a later `lorag ask` opens it
    kept = reopened.sync(docs)
    assert kept.excluded == ["guide/"] and kept.exclude == ["guide/"] and kept.exclude_kept and not kept.modified
    assert sorted(reopened.sources()) == ["notes.txt", "tasks.md"]
    # New patterns replace the kept ones even when no file changes, so the next sync applies them.
    assert not reopened.sync(docs, exclude=["guide/", "missing.md"]).modified
    assert _index(tmp_path / "idx", tiny_st_dir).exclude == ["guide/", "missing.md"]
    cleared = reopened.sync(docs, exclude=[""])
    assert cleared.added == ["guide/cors.md"] and not cleared.exclude_kept and stored_exclude(tmp_path / "idx") == []


def test_failed_sync_leaves_the_index_intact(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    index = _index(tmp_path / "idx", tiny_st_dir)
    index.sync(docs)
    before = _snapshot(tmp_path / "idx")
    (docs / "tasks.md").write_text("# New\n\nnew text about workers\n")

    def broken(texts: object) -> object:
        raise RuntimeError("embedding crashed")

    index.embedder.embed_documents = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError, match="embedding crashed"):
        index.sync(docs)
    assert _snapshot(tmp_path / "idx") == before
    assert "tasks.md" in index.files and len(_index(tmp_path / "idx", tiny_st_dir)) == len(index)


def test_empty_folder_is_a_clear_error_and_writes_nothing(tmp_path: Path, tiny_st_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    index = _index(tmp_path / "idx", tiny_st_dir)
    with pytest.raises(ValueError, match="no readable documents"):
        index.sync(empty)
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_index_built_with_another_embedder_is_refused(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    from lorag.retrieval import SettingsMismatchError
    from tiny_models import build_tiny_sentence_transformer

    _index(tmp_path / "idx", tiny_st_dir).sync(docs)
    other = build_tiny_sentence_transformer(tmp_path / "other", seed=1)
    with pytest.raises(SettingsMismatchError):
        _index(tmp_path / "idx", other)

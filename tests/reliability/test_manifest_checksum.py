"""A damaged or edited ``manifest.json`` or ``CURRENT`` is an ``IndexFormatError`` naming the file when the index is
opened, never a KeyError or "ids already in the index" in the middle of a later sync."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lorag.retrieval import persistence
from lorag.retrieval.persistence import IndexFormatError
from tests.reliability.helpers import open_index, write_docs


@pytest.fixture
def built(tmp_path: Path, tiny_st_dir: Path) -> Path:
    open_index(tmp_path / "idx", tiny_st_dir).sync(write_docs(tmp_path / "docs", 3))
    return tmp_path / "idx"


def _edit(index_dir: Path, change: Callable[[dict[str, Any]], None], *, keep_checksum: bool = True) -> Path:
    """Apply ``change`` to the live manifest; without ``keep_checksum`` it is dropped, as a manifest written before
    lorag checksummed them (or by a tool that rewrites it consistently) would be."""
    path = persistence.live_snapshot(index_dir) / persistence.MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    if not keep_checksum:
        del manifest["checksum"]
    path.write_text(json.dumps(manifest))
    return path


def _bogus_chunk(manifest: dict[str, Any]) -> None:
    manifest["settings"]["files"]["doc000.txt"]["chunk_ids"].append("doc000.txt#000000000000:99")


def _drop_entry(manifest: dict[str, Any]) -> None:
    del manifest["settings"]["files"]["doc001.txt"]


def _bad_entry(manifest: dict[str, Any]) -> None:
    manifest["settings"]["files"]["doc001.txt"] = {"sha256": "abc"}


def test_an_edited_manifest_fails_its_checksum(built: Path, tiny_st_dir: Path) -> None:
    path = _edit(built, _bogus_chunk)
    with pytest.raises(IndexFormatError, match=f"{path} does not match its checksum"):
        open_index(built, tiny_st_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_bogus_chunk, r"chunk ids it lists that the index lacks: \['doc000.txt#000000000000:99'\]"),
        (_drop_entry, "chunks in the index that no file lists: ['doc001.txt#"),
        (_bad_entry, "'files' must map each source file to its sha256 and chunk_ids"),
    ],
)
def test_a_manifest_that_disagrees_with_its_retriever_is_refused_at_load(
    built: Path, tiny_st_dir: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = _edit(built, change, keep_checksum=False)
    with pytest.raises(IndexFormatError) as err:
        open_index(built, tiny_st_dir)
    assert str(path) in str(err.value) and message.replace("\\", "") in str(err.value)


def test_a_manifest_without_a_checksum_that_agrees_still_loads(built: Path, tiny_st_dir: Path) -> None:
    _edit(built, lambda manifest: None, keep_checksum=False)
    assert len(open_index(built, tiny_st_dir)) > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00binary", "CURRENT cannot be read"),
        (b"snap-0123\n", "CURRENT names 'snap-0123', which is not a snapshot in"),
        (b"../../etc\n", "CURRENT names '../../etc', which is not a snapshot in"),
    ],
)
def test_a_damaged_current_names_the_file_and_what_to_do(
    built: Path, tiny_st_dir: Path, content: bytes, message: str
) -> None:
    (built / "CURRENT").write_bytes(content)
    with pytest.raises(IndexFormatError, match=message) as err:
        open_index(built, tiny_st_dir)
    assert str(built / "CURRENT") in str(err.value) and "delete" in str(err.value)


def test_current_as_a_directory_is_a_clear_error(built: Path, tiny_st_dir: Path) -> None:
    (built / "CURRENT").unlink()
    (built / "CURRENT").mkdir()
    with pytest.raises(IndexFormatError, match="CURRENT cannot be read"):
        open_index(built, tiny_st_dir)


def test_cli_index_reports_a_bad_manifest_naming_it_and_deleting_current_rebuilds(
    built: Path, tiny_st_dir: Path
) -> None:
    from lorag.cli import app

    path = _edit(built, _drop_entry, keep_checksum=False)
    args = ["index", "--docs", str(built.parent / "docs"), "--index-dir", str(built), "--embedder", str(tiny_st_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert f"error: {path} does not match the index saved with it" in result.stderr
    (built / "CURRENT").unlink()  # what the message says to do
    rebuilt = CliRunner().invoke(app, args)
    assert rebuilt.exit_code == 0 and "3 added" in rebuilt.stderr and "0 chunks embedded" in rebuilt.stderr
    assert [p.name for p in built.iterdir() if p.name.startswith("snap-")] == [persistence.live_snapshot(built).name]

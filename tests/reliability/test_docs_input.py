"""Hostile ``--docs`` folders: links out of the folder, late-NUL binaries, broken text, huge files, special files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lorag.rag.loaders import clean_text, load_folder

SECRET = "root:x:0:0:the secret outside the folder"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the documents folder, with a file and a subfolder the documents must not reach."""
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (folder / "passwd.txt").write_text(SECRET)
    (folder / "sub" / "notes.md").write_text(f"# Notes\n\n{SECRET}")
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text("# Guide\n\nThe server listens on port 8000.")
    return folder


def _texts(folder: Path, **options: object) -> str:
    return "\n".join(d.text for d in load_folder(folder, **options).documents)  # type: ignore[arg-type]


def test_links_out_of_the_folder_are_skipped_and_reported(docs: Path, outside: Path) -> None:
    (docs / "passwd.txt").symlink_to(outside / "passwd.txt")
    (docs / "linked").symlink_to(outside / "sub", target_is_directory=True)
    (docs / "dangling.md").symlink_to(outside / "gone.md")
    report = load_folder(docs)
    assert SECRET not in "\n".join(d.text for d in report.documents)
    assert [d.source for d in report.documents] == ["guide.md"]
    reasons = dict(report.skipped)
    assert "outside the folder (--follow-links" in reasons["passwd.txt"]
    assert str(outside / "passwd.txt") in reasons["passwd.txt"]
    assert "outside the folder" in reasons["linked"]
    assert reasons["dangling.md"] == "broken symlink"


def test_follow_links_reads_them_and_a_link_cycle_ends(docs: Path, outside: Path) -> None:
    (docs / "passwd.txt").symlink_to(outside / "passwd.txt")
    (docs / "linked").symlink_to(outside / "sub", target_is_directory=True)
    (outside / "sub" / "back").symlink_to(outside, target_is_directory=True)  # outside/sub/back -> outside: a cycle
    report = load_folder(docs, follow_links=True)
    sources = [d.source for d in report.documents]
    assert sources == ["guide.md", "linked/back/passwd.txt", "linked/notes.md", "passwd.txt"]
    assert "already read" in dict(report.skipped)["linked/back/sub"]


def test_links_inside_the_folder_are_read_once(docs: Path) -> None:
    (docs / "sub").mkdir()
    (docs / "sub" / "a.txt").write_text("inside text")
    (docs / "alias.txt").symlink_to(docs / "sub" / "a.txt")
    (docs / "subalias").symlink_to(docs / "sub", target_is_directory=True)
    report = load_folder(docs)
    assert [d.source for d in report.documents] == ["alias.txt", "guide.md", "sub/a.txt"]
    assert "already read" in dict(report.skipped)["subalias"]


def test_a_nul_byte_anywhere_makes_a_file_binary(docs: Path) -> None:
    (docs / "late.txt").write_bytes(b"plain text " * 2000 + b"\x00\x01\x02 and more")
    (docs / "wide.txt").write_bytes("UTF-16 text".encode("utf-16"))
    reasons = dict(load_folder(docs).skipped)
    assert reasons["late.txt"] == "binary content (NUL byte at byte 22000)"
    assert "convert it to UTF-8" in reasons["wide.txt"]


def test_lone_surrogates_are_replaced_and_counted(docs: Path) -> None:
    # CESU-8, as Java and some JSON tools write: a lone high surrogate, and a pair that is one emoji.
    (docs / "cesu.txt").write_bytes(b"lone \xed\xa0\xbd here; pair \xed\xa0\xbd\xed\xb8\x80 joined")
    report = load_folder(docs)
    doc = next(d for d in report.documents if d.source == "cesu.txt")
    assert doc.text == "lone \ufffd here; pair \U0001f600 joined"
    assert doc.replaced == 1
    assert report.replaced == [("cesu.txt", 1)]
    doc.text.encode("utf-8")  # encodable: the tokenizer and the checksum both need it


def test_clean_text_replaces_what_cannot_be_encoded() -> None:
    assert clean_text("a\ud83db\udc00c") == ("a\ufffdb\ufffdc", 2)
    assert clean_text("x\ufffey\U0010ffffz\ufdd0") == ("x\ufffdy\ufffdz\ufffd", 3)
    assert clean_text("ok \ufffd already") == ("ok \ufffd already", 0)
    assert clean_text("\ud83d\ude00") == ("\U0001f600", 0)


def test_files_over_the_size_limit_are_skipped_before_reading(docs: Path) -> None:
    (docs / "big.txt").write_text("word " * 300_000)  # 1.5 MB
    report = load_folder(docs, max_file_mb=1)
    assert [d.source for d in report.documents] == ["guide.md"]
    assert dict(report.skipped)["big.txt"] == (
        "1.5 MB, over the 1 MB limit per file (raise it with --max-file-mb / max_file_mb)"
    )
    assert [d.source for d in load_folder(docs, max_file_mb=2).documents] == ["big.txt", "guide.md"]
    with pytest.raises(ValueError, match="max_file_mb must be a positive number"):
        load_folder(docs, max_file_mb=0)


def test_a_fifo_is_reported_not_waited_on(docs: Path) -> None:
    os.mkfifo(docs / "pipe.txt")
    report = load_folder(docs)
    assert dict(report.skipped)["pipe.txt"] == "not a regular file"


def test_lorag_index_skips_a_link_out_of_the_folder_until_follow_links(
    docs: Path, outside: Path, tmp_path: Path, tiny_st_dir: Path
) -> None:
    from typer.testing import CliRunner

    from lorag.cli import app
    from lorag.rag.index import DocumentIndex

    (docs / "passwd.txt").symlink_to(outside / "passwd.txt")
    index = tmp_path / "index"
    args = ["index", "--docs", str(docs), "--index-dir", str(index), "--embedder", str(tiny_st_dir)]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert DocumentIndex(index, embedder=str(tiny_st_dir), show_progress=False).sources() == ["guide.md"]
    assert CliRunner().invoke(app, [*args, "--follow-links"]).exit_code == 0
    assert DocumentIndex(index, embedder=str(tiny_st_dir), show_progress=False).sources() == ["guide.md", "passwd.txt"]
    (docs / "big.txt").write_text("word " * 400)  # 2 kB
    limited = CliRunner().invoke(app, [*args, "--max-file-mb", "0.001"])
    assert limited.exit_code == 0
    assert DocumentIndex(index, embedder=str(tiny_st_dir), show_progress=False).sources() == ["guide.md"]

"""Atomic writes: the whole new file or the old one, never a temporary left behind, the umask honoured."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lorag.atomic import atomic_path, write_atomically


def test_text_and_bytes_replace_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_atomically(target, "old\n")
    write_atomically(target, b"new\n", durable=True)
    assert target.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.txt.") and tmp.name.endswith(".tmp")
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_the_new_file_has_the_mode_open_would_give_it(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640

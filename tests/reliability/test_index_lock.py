"""One writer per directory: a second writer fails naming the first's PID (or waits with ``wait``); a sync starts
from what another writer saved; a reader whose snapshot is replaced under it reads the new one; trainers lock too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.locking import LOCK_NAME, DirectoryBusyError, exclusive, lock_file
from lorag.retrieval import persistence
from tests.reliability.helpers import contents, open_index, unprivileged, write_docs

# An older lorag: flock on the file beside the directory, its PID written there.
HOLD_LEGACY = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("held", flush=True)
time.sleep(60)
"""

HOLD = """
import sys, time
from lorag.locking import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@contextmanager
def held_by_thread(directory: Path, release_after: float = 30.0, *, beside: bool = False) -> Iterator[threading.Event]:
    """Hold ``directory``'s lock in another thread (a flock on its own file descriptor, as another process would)."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(directory, beside=beside):
            taken.set()
            release.wait(release_after)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join()


def test_a_second_writer_fails_at_once_naming_the_pid_and_kill_9_frees_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        started = time.monotonic()
        busy = pytest.raises(DirectoryBusyError, match=f"{target} is being written by PID {child.pid}")
        with busy as err, exclusive(target, wait=0):
            pass
        assert err.value.pid == child.pid and time.monotonic() - started < 1
        assert [p.name for p in target.iterdir()] == [LOCK_NAME]  # inside the directory: its parent is not written
        assert [p.name for p in tmp_path.iterdir()] == ["idx"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with exclusive(target, wait=0):  # the kernel dropped the dead writer's lock: nothing stale to clean up
        assert lock_file(target).read_text().strip() == str(os.getpid())


def test_wait_outlasts_a_writer_that_finishes(tmp_path: Path) -> None:
    with held_by_thread(tmp_path / "idx") as release:
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with exclusive(tmp_path / "idx", wait=10):
            assert time.monotonic() - started >= 0.25


def test_the_lock_is_reentrant_and_covers_subdirectories_in_one_thread(tmp_path: Path) -> None:
    inner = tmp_path / "idx" / "snap-1" / "retriever"
    with exclusive(tmp_path / "idx", wait=0), exclusive(tmp_path / "idx", wait=0), exclusive(inner, wait=0):
        assert not lock_file(inner).exists()
    with held_by_thread(tmp_path / "idx"), pytest.raises(DirectoryBusyError), exclusive(tmp_path / "idx", wait=0.1):
        pass


def test_sync_of_a_busy_index_fails_and_writes_nothing(tmp_path: Path, tiny_st_dir: Path) -> None:
    docs = write_docs(tmp_path / "docs", 3)
    open_index(tmp_path / "idx", tiny_st_dir).sync(docs)
    before = {p: p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    write_docs(docs, 3, version=2)
    index = open_index(tmp_path / "idx", tiny_st_dir)
    with held_by_thread(tmp_path / "idx"), pytest.raises(DirectoryBusyError, match=f"PID {os.getpid()}"):
        index.sync(docs)
    assert {p: p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()} == before


def test_a_sync_starts_from_what_another_writer_saved(tmp_path: Path, tiny_st_dir: Path) -> None:
    docs = write_docs(tmp_path / "docs", 4)
    open_index(tmp_path / "idx", tiny_st_dir).sync(docs)
    first, second = open_index(tmp_path / "idx", tiny_st_dir), open_index(tmp_path / "idx", tiny_st_dir)
    write_docs(docs, 4, version=2)
    first.sync(docs)
    report = second.sync(docs)  # loaded before first's sync: it would delete chunks first had already deleted
    assert not report.modified and report.chunks_embedded == 0
    open_index(tmp_path / "clean", tiny_st_dir).sync(docs)
    assert contents(tmp_path / "idx", tiny_st_dir) == contents(tmp_path / "clean", tiny_st_dir)


def test_a_reader_whose_snapshot_is_replaced_under_it_reads_the_new_one(tmp_path: Path, tiny_st_dir: Path) -> None:
    docs = write_docs(tmp_path / "docs", 3)
    writer = open_index(tmp_path / "idx", tiny_st_dir)
    writer.sync(docs)
    old = persistence.live_snapshot(tmp_path / "idx")
    seen: list[str] = []

    def read(snapshot: Path) -> dict[str, object]:
        seen.append(snapshot.name)
        if len(seen) == 1:  # a writer swaps CURRENT and removes this snapshot while the reader is in it
            write_docs(docs, 3, version=2)
            writer.sync(docs)
        return persistence.read_manifest(snapshot, "lorag.document_index")

    settings = persistence.read_live(tmp_path / "idx", read)
    assert seen[0] == old.name and seen[1] != old.name and not old.exists()
    assert sorted(settings["files"]) == sorted(p.name for p in docs.iterdir())


def test_cli_index_busy_exits_2_naming_the_pid_and_wait_outlasts_it(tmp_path: Path, tiny_st_dir: Path) -> None:
    from lorag.cli import app

    docs = write_docs(tmp_path / "docs", 2)
    args = ["index", "--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    with held_by_thread(tmp_path / "idx") as release:
        busy = CliRunner().invoke(app, args)
        assert busy.exit_code == 2, busy.output
        assert f"is being written by PID {os.getpid()}" in busy.stderr and "--wait SECONDS" in busy.stderr
        assert [p.name for p in (tmp_path / "idx").iterdir()] == [LOCK_NAME]  # the busy run wrote nothing
        threading.Timer(0.5, release.set).start()
        waited = CliRunner().invoke(app, [*args, "--wait", "30"])
    assert waited.exit_code == 0, waited.output
    assert "2 added" in waited.stderr


def test_an_older_lorag_holding_the_lock_beside_the_index_is_waited_for(tmp_path: Path) -> None:
    """Indexes written before the lock moved inside keep ``.<name>.lock`` beside them; an older lorag still writing
    holds that file (and writes its PID there), so a writer now takes it too."""
    target = tmp_path / "idx"
    target.mkdir()
    legacy = lock_file(target, beside=True)
    assert legacy == tmp_path / ".idx.lock"
    older = subprocess.Popen([sys.executable, "-c", HOLD_LEGACY, str(legacy)], stdout=subprocess.PIPE, text=True)
    try:
        assert older.stdout is not None and older.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusyError, match=f"PID {older.pid}"), exclusive(target, wait=0.2):
            pass
    finally:
        older.send_signal(signal.SIGKILL)
        older.wait()
    with exclusive(target, wait=0):
        assert lock_file(target).read_text().strip() == str(os.getpid())


def test_a_directory_that_cannot_hold_the_lock_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="a-file is a file, not a directory"), exclusive(tmp_path / "a-file"):
        pass
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    code = "import sys\nfrom lorag.locking import exclusive\nwith exclusive(sys.argv[1]):\n    pass\n"
    try:
        done = subprocess.run(
            unprivileged([sys.executable, "-c", code, str(folder / "idx")]), capture_output=True, text=True
        )
    finally:
        folder.chmod(0o755)
    expected = f"cannot create {folder / 'idx'} (Permission denied): make {folder} writable by this user, or choose"
    assert done.returncode == 1 and f"DirectoryNotWritableError: {expected}" in done.stderr
    assert list(folder.iterdir()) == []


def test_trainers_refuse_an_output_another_run_is_writing(tmp_path: Path) -> None:
    from lorag.training.distill import distill
    from lorag.training.qlora import train_adapter

    out = tmp_path / "out"
    with held_by_thread(out, beside=True):  # an output locks beside it: it must start empty
        with pytest.raises(DirectoryBusyError, match=f"{out} is being written by PID"):
            train_adapter("no-such-base", tmp_path / "no-such.jsonl", out)
        with pytest.raises(DirectoryBusyError, match=f"{out} is being written by PID"):
            distill("no-such-teacher", "layers:1", output_dir=out, texts=["a text", "another text"])
    assert not out.exists()
    with pytest.raises(FileNotFoundError):  # free again: the usual checks run
        train_adapter("no-such-base", tmp_path / "no-such.jsonl", out)


def test_ask_syncing_a_folder_another_process_syncs_waits_for_it(tmp_path: Path, tiny_st_dir: Path) -> None:
    """Two `lorag ask --docs` (or eval-rag) runs on one folder: the second waits for the first's sync, never fails."""
    from lorag.cli.documents import IndexBackend, open_index

    docs = write_docs(tmp_path / "docs", 2)
    with held_by_thread(tmp_path / "idx") as release:
        threading.Timer(0.5, release.set).start()
        index = open_index(docs, tmp_path / "idx", str(tiny_st_dir), IndexBackend.torch, quiet=True)
    assert len(index.search("document", k=2)) == 2

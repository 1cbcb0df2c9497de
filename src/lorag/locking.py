"""One writer at a time per directory, across processes: an index directory, a trainer's output directory.

Two ``lorag index`` runs on one index once both exited 0 with ``CURRENT`` naming a snapshot the other had deleted.
A writer now holds an exclusive ``fcntl.flock`` on a lock file for its whole run. A kernel lock rather than a file
whose existence is the lock: it is dropped when the process dies, ``kill -9`` included, so there is never a stale lock
to clean up. (The ``filelock`` package does the same on POSIX but is no lorag dependency; fcntl means POSIX only.)

An index directory's lock file is inside it (``.lorag.lock``, which snapshot clean-up never touches), so a writer
needs write access to the index only, not to its parent. Earlier lorag locked a file beside the directory
(``.<name>.lock``); where that file exists a writer takes it too, so an older lorag still writing is excluded.
A trainer's output locks beside it (``beside=True``): its inputs are checked before anything appears inside, and
an output directory must start empty. Holding the lock of a directory covers everything below it, so an index saving
its nested retriever does not lock again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_POLL_S = 0.05
LOCK_NAME = ".lorag.lock"
_held = threading.local()  # .dirs: the directories this thread holds the lock of


class DirectoryBusyError(ValueError):
    """Another process (or thread) is writing the directory.

    A ``ValueError`` like lorag's other "this directory cannot be used" errors (``IndexFormatError``), so every
    command that reports those reports this one too, without a traceback.
    """

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        by = f"PID {pid}" if pid is not None else "another process"
        super().__init__(f"{directory} is being written by {by}; wait for it to finish and try again")


class DirectoryNotWritableError(ValueError):
    """The lock file cannot be created, so neither could anything the writer was about to write there."""

    def __init__(self, err: OSError) -> None:
        self.path = Path(err.filename)
        super().__init__(
            f"cannot create {self.path} ({err.strerror}): make {self.path.parent} writable by this user, or choose "
            "another directory"
        )


def lock_file(directory: str | Path, *, beside: bool = False) -> Path:
    """The file whose flock guards ``directory``: inside it, or with ``beside`` next to it (``.<name>.lock``)."""
    target = Path(directory).expanduser().resolve()
    return target.parent / f".{target.name}.lock" if beside else target / LOCK_NAME


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _open_lock(target: Path, beside: bool) -> list[int]:
    """Descriptors of the lock files to flock, in order: the lock file, then an older lorag's beside ``target``."""
    path = lock_file(target, beside=beside)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file, not a directory: give a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fds = [os.open(path, os.O_RDWR | os.O_CREAT, 0o644)]
    except OSError as err:
        raise DirectoryNotWritableError(err) from err
    if not beside:
        with contextlib.suppress(OSError):  # none there (the usual case), or unreadable: no older writer uses it
            fds.append(os.open(lock_file(target, beside=True), os.O_RDWR))
    return fds


def _take(fd: int, target: Path, deadline: float | None) -> None:
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                raise DirectoryBusyError(target, _holder(fd)) from None
            if not told:
                logger.info("waiting for PID %s, which is writing %s", _holder(fd), target)
                told = True
            time.sleep(_POLL_S)


@contextlib.contextmanager
def exclusive(directory: str | Path, *, wait: float | None = None, beside: bool = False) -> Iterator[None]:
    """Hold the write lock of ``directory`` (re-entrant within a thread, and covering its subdirectories).

    Args:
        directory: the directory about to be written; created if missing (with ``beside``, only its parent is).
        wait: seconds to wait for another writer to finish; ``0`` fails at once, ``None`` waits as long as it takes.
        beside: lock with a file next to the directory, leaving it untouched (trainers' outputs).

    Raises:
        DirectoryBusyError: another writer still holds it after ``wait`` seconds; the message names its PID.
        DirectoryNotWritableError: the lock file cannot be created there (read-only folder or file system).
        NotADirectoryError: ``directory`` is a file.
    """
    target = Path(directory).expanduser().resolve()
    held: set[Path] = _held.__dict__.setdefault("dirs", set())
    if any(d == target or d in target.parents for d in held):
        yield
        return
    fds = _open_lock(target, beside)
    taken: list[int] = []
    try:
        deadline = None if wait is None else time.monotonic() + wait
        for fd in fds:
            _take(fd, target, deadline)
            taken.append(fd)
        os.ftruncate(fds[0], 0)
        os.pwrite(fds[0], f"{os.getpid()}\n".encode(), 0)
        held.add(target)
        try:
            yield
        finally:
            held.discard(target)
            os.ftruncate(fds[0], 0)  # a waiter that reads the PID before the next holder writes its own sees none
    finally:
        for fd in reversed(taken):
            fcntl.flock(fd, fcntl.LOCK_UN)
        for fd in fds:
            os.close(fd)


def holding_lock(argument: str) -> Callable[[F], F]:
    """Run the decorated function holding the lock of the directory passed as its ``argument``; fail at once if busy.

    For trainers: a second run into the same output fails before it reads anything, instead of interleaving
    checkpoints with the first. The lock file sits beside the output, which stays as it was until the inputs pass.
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            directory = signature.bind(*args, **kwargs).arguments[argument]
            with exclusive(directory, wait=0, beside=True):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

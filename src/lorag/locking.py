"""One writer at a time per directory, across processes: an index directory, a trainer's output directory.

Two ``lorag index`` runs on one index once both exited 0 with ``CURRENT`` naming a snapshot the other had deleted.
A writer now holds an exclusive ``fcntl.flock`` on a lock file for its whole run. A kernel lock rather than a file
whose existence is the lock: it is dropped when the process dies, ``kill -9`` included, so there is never a stale lock
to clean up. (The ``filelock`` package does the same on POSIX but is no lorag dependency; fcntl means POSIX only.)

The lock file sits beside the directory (``.<name>.lock``), so taking the lock changes nothing inside it: a trainer's
output stays untouched until its inputs are checked, and an index directory's listing stays the index. Holding the
lock of a directory covers everything below it, so an index saving its nested retriever does not lock again.
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


def lock_file(directory: str | Path) -> Path:
    """The file whose flock guards ``directory``."""
    target = Path(directory).expanduser().resolve()
    return target.parent / f".{target.name}.lock"


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def exclusive(directory: str | Path, *, wait: float | None = None) -> Iterator[None]:
    """Hold the write lock of ``directory`` (re-entrant within a thread, and covering its subdirectories).

    Args:
        directory: the directory about to be written; it need not exist yet (its parent is created).
        wait: seconds to wait for another writer to finish; ``0`` fails at once, ``None`` waits as long as it takes.

    Raises:
        DirectoryBusyError: another writer still holds it after ``wait`` seconds; the message names its PID.
    """
    target = Path(directory).expanduser().resolve()
    held: set[Path] = _held.__dict__.setdefault("dirs", set())
    if any(d == target or d in target.parents for d in held):
        yield
        return
    path = lock_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if wait is None else time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise DirectoryBusyError(target, _holder(fd)) from None
                if not told:
                    logger.info("waiting for PID %s, which is writing %s", _holder(fd), target)
                    told = True
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held.add(target)
        try:
            yield
        finally:
            held.discard(target)
            os.ftruncate(fd, 0)  # a waiter that reads the PID before the next holder writes its own sees none
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holding_lock(argument: str) -> Callable[[F], F]:
    """Run the decorated function holding the lock of the directory passed as its ``argument``; fail at once if busy.

    For trainers: a second run into the same output fails before it reads anything, instead of interleaving
    checkpoints with the first.
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            directory = signature.bind(*args, **kwargs).arguments[argument]
            with exclusive(directory, wait=0):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

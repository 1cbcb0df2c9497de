"""``kill -9`` at random points of a sync: the index is then either the old or the new one, whole and loadable, and
the next sync finishes it and removes what the killed writer left behind."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorag.retrieval import persistence
from tests.reliability.helpers import contents, leftovers, open_index, write_docs

KILLS = 10
SYNC = """
import sys
from lorag.rag.index import DocumentIndex
index = DocumentIndex(sys.argv[1], embedder=sys.argv[2], show_progress=False)
print("ready", flush=True)
sys.stdin.readline()
index.sync(sys.argv[3])
print("done", flush=True)
"""


def _start(index_dir: Path, embedder_dir: Path, docs: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SYNC, str(index_dir), str(embedder_dir), str(docs)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _go(proc: subprocess.Popen[str]) -> float:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return time.monotonic()


@pytest.mark.slow
def test_kill_9_during_a_sync_leaves_the_old_or_the_new_index_and_the_next_sync_finishes(
    tmp_path: Path, tiny_st_dir: Path
) -> None:
    rng = random.Random(9)
    v1 = write_docs(tmp_path / "v1", 30)
    v2 = write_docs(tmp_path / "v2", 30, version=2)
    open_index(tmp_path / "clean1", tiny_st_dir).sync(v1)
    open_index(tmp_path / "clean2", tiny_st_dir).sync(v2)
    old, new = contents(tmp_path / "clean1", tiny_st_dir), contents(tmp_path / "clean2", tiny_st_dir)

    timing = tmp_path / "timing"
    shutil.copytree(tmp_path / "clean1", timing)
    proc = _start(timing, tiny_st_dir, v2)
    started = _go(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
    duration = time.monotonic() - started

    for trial in range(KILLS):
        index_dir = tmp_path / f"idx{trial}"
        if trial % 3:  # two trials in three update an index, one in three is killed while building the first
            shutil.copytree(tmp_path / "clean1", index_dir)
        proc = _start(index_dir, tiny_st_dir, v2)
        delay = rng.uniform(0, duration * 1.1)
        _go(proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (index_dir / persistence.CURRENT).exists():
            state = contents(index_dir, tiny_st_dir)
            assert state in (old, new), f"trial {trial}: killed after {delay:.2f}s, the index is neither old nor new"
        else:
            assert trial % 3 == 0, f"trial {trial}: the index lost its CURRENT"
        open_index(index_dir, tiny_st_dir).sync(v2)
        assert contents(index_dir, tiny_st_dir) == new and leftovers(index_dir) == [], f"trial {trial}"

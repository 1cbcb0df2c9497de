"""Two ``lorag index`` processes on one index directory, 20 times: the index is always loadable and equal to a clean
build, with no snapshot left over. (Before the lock, 1 trial in 3 left ``CURRENT`` naming a deleted snapshot.)"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import contents, leftovers, lorag, open_index, write_docs

TRIALS = 20


@pytest.mark.slow
def test_two_lorag_index_runs_on_one_directory_leave_a_clean_build(tmp_path: Path, tiny_st_dir: Path) -> None:
    rng = random.Random(17)
    v1 = write_docs(tmp_path / "v1", 6)
    v2 = write_docs(tmp_path / "v2", 6, version=2)
    open_index(tmp_path / "clean1", tiny_st_dir).sync(v1)
    open_index(tmp_path / "clean2", tiny_st_dir).sync(v2)
    clean = contents(tmp_path / "clean2", tiny_st_dir)
    for trial in range(TRIALS):
        index_dir = tmp_path / f"idx{trial}"
        if trial % 2:  # half the trials update an existing index, half build one
            shutil.copytree(tmp_path / "clean1", index_dir)
        wait = ["--wait", "300"] if trial % 4 >= 2 else []
        args = ["index", "--docs", str(v2), "--index-dir", str(index_dir), "--embedder", str(tiny_st_dir), *wait]
        first = lorag(*args)
        time.sleep(rng.uniform(0, 1.0))
        second = lorag(*args)
        for proc, other in ((first, second), (second, first)):
            _, err = proc.communicate(timeout=600)
            if proc.returncode == 2 and not wait:
                assert f"is being written by PID {other.pid}" in err, err
            else:
                assert proc.returncode == 0, err
        assert 0 in (first.returncode, second.returncode)
        assert contents(index_dir, tiny_st_dir) == clean, f"trial {trial}"
        assert leftovers(index_dir) == [], f"trial {trial}"

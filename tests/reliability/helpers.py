"""Shared by the reliability tests: documents folders, a clean build to compare with, ``lorag`` in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lorag.rag.index import DocumentIndex


def write_docs(folder: Path, n: int, *, version: int = 1) -> Path:
    """``n`` small text files; ``version`` 2 changes one, removes one and adds one (a sync with every kind of work)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    names = [f"doc{i:03d}.txt" for i in range(n)]
    if version == 2:
        names = [*names[1:], f"doc{n:03d}.txt"]
    for name in names:
        words = " ".join(f"{name[:-4]}-word{j}" for j in range(40))
        extra = " changed in version two" if version == 2 and name == names[0] else ""
        (folder / name).write_text(f"{name} is about topic {name[3:6]}{extra}.\n\n{words}\n")
    return folder


def open_index(index_dir: Path, embedder_dir: Path) -> DocumentIndex:
    return DocumentIndex(index_dir, embedder=str(embedder_dir), show_progress=False)


def contents(index_dir: Path, embedder_dir: Path) -> dict[str, Any]:
    """What an index holds, independent of snapshot names and chunk order: files, chunks and every chunk's scores."""
    index = open_index(index_dir, embedder_dir)
    assert index.retriever is not None
    hits = index.retriever.search("topic 002 word3", len(index))
    return {
        "files": index.files,
        "chunks": {h.id: (h.text, h.metadata) for h in hits},
        "scores": {h.id: {k: None if v is None else round(v, 4) for k, v in h.component_scores.items()} for h in hits},
    }


def leftovers(index_dir: Path) -> list[str]:
    """Snapshots ``CURRENT`` does not name and pointer temp files: what a finished writer must have removed."""
    live = (index_dir / "CURRENT").read_text().strip()
    return sorted(p.name for p in index_dir.iterdir() if p.name.startswith(("snap-", ".CURRENT")) and p.name != live)


def lorag(*args: str) -> subprocess.Popen[str]:
    """``python -m lorag ARGS`` in a subprocess, one thread, offline, its output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "lorag", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions bind: unchanged for a user; for root (who writes into read-only folders),
    under ``setpriv`` without the capabilities that override permissions. Skips the test where that is impossible."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: a read-only folder cannot be made to refuse root")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *argv]

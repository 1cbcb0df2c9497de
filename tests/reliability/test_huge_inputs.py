"""A 50 MB single-line file is read and chunked in a process capped at 1 GiB of address space.

Before, chunking cost about 180-250 MB per MB of such text (a 50 MB line: over 9 GB, killed after 290 s). The child
reads the file as ``lorag index`` does (``load_folder``) and splits it with the index's splitters, measured in the
tiny embedder's WordPiece tokens, and with the character splitters; an allocation over the cap fails the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CAP_BYTES = 1 << 30

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from tokenizers import Tokenizer
from lorag.chunking import TokenLength, make_splitter
from lorag.rag.loaders import load_folder

(doc,) = load_folder(sys.argv[1]).documents
assert len(doc.text) > 50_000_000 and "\\n" not in doc.text
tokens = TokenLength(Tokenizer.from_file(sys.argv[2]))
for method, size, overlap, length in [
    ("recursive", 1000, 125, None),
    ("markdown", 1000, 125, None),
    ("recursive", 254, 32, tokens),  # what DocumentIndex uses for text files
]:
    chunks = make_splitter(method, size, overlap, length).split(doc.text)
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text.rstrip())
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:])), "consecutive chunks overlap: none skipped"
    print(method, length is not None, len(chunks), max(len(c) for c in chunks), flush=True)
    del chunks
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"peak RSS {{peak}} MiB", flush=True)
"""


@pytest.mark.slow
def test_a_50_mb_line_is_chunked_within_1_gib(tmp_path: Path, tiny_st_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
    line = " ".join(words[(i * 7) % 10] + str(i % 97) for i in range(7_000_000))
    (docs / "huge.txt").write_text(line[:50_500_000])
    del line
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(cap=CAP_BYTES), str(docs), str(tiny_st_dir / "tokenizer.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = [["recursive", "False"], ["markdown", "False"], ["recursive", "True"]]
    assert [line.split()[:2] for line in lines[:3]] == expected
    assert all(int(line.split()[3]) <= 254 * 32 for line in lines[:3]), "no chunk over the character cap"

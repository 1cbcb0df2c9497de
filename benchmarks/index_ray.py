"""Indexing time of SciFact abstracts: ``DocumentIndex.sync`` in one process vs sharded over 1 and 2 Ray workers.

Each abstract becomes one ``.txt`` file (title and text); every row builds a fresh index (its own empty embedding
cache) with minilm on the torch backend, timed from ``sync`` called to index saved, Ray's start and the workers'
model loads included. The Ray rows start a local runtime with as many CPUs as workers. Each Ray build is checked
against the single-process one: the same chunk ids and texts, and the largest difference between their vectors.

Usage:
    python benchmarks/index_ray.py /work/shared/data/scifact [--limit 1000] [--out benchmarks/results/index_ray.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lorag.rag.index import DocumentIndex
from lorag.rag.ray_sync import RayExecutor
from lorag.retrieval.dense import DenseIndex


def write_docs(scifact: Path, folder: Path, limit: int | None) -> int:
    folder.mkdir(parents=True)
    written = 0
    with gzip.open(scifact / "corpus.jsonl.gz", "rt") as lines:
        for line in lines:
            if limit is not None and written >= limit:
                break
            doc = json.loads(line)
            (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n")
            written += 1
    return written


def build(docs: Path, index_dir: Path, executor: str | RayExecutor) -> tuple[float, DocumentIndex]:
    index = DocumentIndex(index_dir, embedder="minilm", show_progress=False)
    started = time.perf_counter()
    index.sync(docs, executor=executor)  # type: ignore[arg-type]
    return time.perf_counter() - started, index


def rows(index: DocumentIndex) -> tuple[list[str], list[str], np.ndarray]:
    assert index.retriever is not None and isinstance(index.retriever.dense, DenseIndex)
    dense = index.retriever.dense
    order = np.argsort(dense.docs.ids)
    return [dense.docs.ids[i] for i in order], [dense.docs.texts[i] for i in order], dense.vectors()[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scifact", type=Path, help="folder holding SciFact's corpus.jsonl.gz")
    parser.add_argument("--limit", type=int, default=None, help="index only the first N abstracts")
    parser.add_argument("--out", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        n_docs = write_docs(args.scifact, docs, args.limit)
        load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        seconds, local = build(docs, Path(tmp) / "local", "local")
        ids, texts, vectors = rows(local)
        table = [("single process (no Ray)", seconds, "reference")]
        for workers in (1, 2):
            seconds, sharded = build(docs, Path(tmp) / f"ray{workers}", RayExecutor(workers=workers))
            r_ids, r_texts, r_vectors = rows(sharded)
            same = r_ids == ids and r_texts == texts
            diff = float(np.abs(r_vectors - vectors).max()) if same else float("nan")
            check = f"same chunks: {same}; largest vector difference {diff:.1e}"
            table.append((f"Ray, {workers} worker{'s' * (workers > 1)}", seconds, check))
        load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    base = table[0][1]
    lines = [
        f"## SciFact, {n_docs} abstracts, {len(ids)} chunks, minilm (torch)",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        f"- `uptime` before: {load_before}",
        f"- `uptime` after: {load_after}",
        "",
        "| build | seconds | speed-up over single process | check against single process |",
        "| --- | ---: | ---: | --- |",
        *(f"| {name} | {s:.1f} | {base / s:.2f} | {check} |" for name, s, check in table),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        with args.out.open("a") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()

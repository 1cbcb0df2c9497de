"""Part 3 of the chunking benchmark: pathological inputs, lorag's recursive splitter next to LangChain's.

Inputs no documentation folder has but a user's folder may: one 50 MB line of words, text without a single space,
one giant Markdown table. Each (splitter, input) runs in its own single-threaded process that reads the input
from a file, so time (CPU seconds of that process) and memory (its peak RSS above what it held with the text
loaded) belong to the split alone. Sizes go up by 10x per input, so the table shows whether cost is linear.

Run through ``benchmarks/chunking.py --parts pathological``; ``--child`` is the per-process entry point.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (input, unit, megabytes): LangChain's splitter is quadratic on text without spaces (1 MB: 1 s, 2 MB: 3.8 s),
# and measures tokens one piece at a time (8 s per MB of words), which bounds what a run can afford.
CASES = [
    ("one line", "characters", 5),
    ("one line", "characters", 50),
    ("no spaces", "characters", 0.5),
    ("no spaces", "characters", 5),
    ("markdown table", "characters", 5),
    ("markdown table", "characters", 50),
    ("one line", "tokens", 1),
    ("one line", "tokens", 5),
    ("no spaces", "tokens", 0.2),
    ("no spaces", "tokens", 1),
    ("markdown table", "tokens", 1),
    ("markdown table", "tokens", 5),
]
SETTINGS = {"characters": (1000, 200), "tokens": (256, 32)}  # as part 1: chunk_size, overlap
SPLITTERS = ("lorag recursive", "LangChain RecursiveCharacterTextSplitter")
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
SRC = Path(__file__).resolve().parents[1] / "src"


def make_input(kind: str, megabytes: float) -> str:
    n = int(megabytes * 1_000_000)
    if kind == "one line":
        rnd = random.Random(0)
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
        return " ".join(rnd.choice(words) + str(rnd.randrange(100)) for _ in range(n // 7 + 1))[:n]
    if kind == "no spaces":
        return ("abcdefghijklmnopqrstuvwxyz0123456789" * (n // 36 + 1))[:n]
    row = "| " + " | ".join(f"cell {i} value" for i in range(6)) + " |\n"
    head = "| " + " | ".join(f"column {i}" for i in range(6)) + " |\n|" + "---|" * 6 + "\n"
    return head + row * ((n - len(head)) // len(row))


def _split_function(splitter: str, unit: str):  # type: ignore[no-untyped-def]
    size, overlap = SETTINGS[unit]
    if splitter == SPLITTERS[0]:
        from lorag.chunking import TokenLength, make_splitter

        lorag_splitter = make_splitter("recursive", size, overlap, TokenLength("minilm") if unit == "tokens" else None)
        return lambda text: len(lorag_splitter.split(text))
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if unit == "tokens":
        from lorag.chunking import load_tokenizer

        lc_splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            load_tokenizer("minilm"), chunk_size=size, chunk_overlap=overlap, add_start_index=True
        )
    else:
        lc_splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, add_start_index=True)
    # Documents with start_index: chunks with offsets, what lorag returns.
    return lambda text: len(lc_splitter.create_documents([text]))


def _rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(splitter: str, unit: str, path: Path) -> dict:
    """Split the file's text once in this process; time and memory of the split only."""
    split = _split_function(splitter, unit)
    text = path.read_text(encoding="utf-8")
    split(text[:2000])  # warm up lazy imports and tokenizer caches
    # Reset the peak (reading the file held its bytes and its text at once), so the peak is the split's.
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    chunks = split(text)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "peak_mb": (_rss_kib("VmHWM") - before) / 1024, "chunks": chunks}


def run(timeout: float = 3600) -> list[dict]:
    """Every case with both splitters, each in a fresh single-threaded process."""
    rows = []
    python_path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **SINGLE_THREAD, "PYTHONPATH": python_path}
    with tempfile.TemporaryDirectory() as folder:
        for kind, unit, megabytes in CASES:
            path = Path(folder) / "input.txt"
            path.write_text(make_input(kind, megabytes), encoding="utf-8")
            row = {"input": kind, "unit": unit, "megabytes": megabytes}
            for splitter in SPLITTERS:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", splitter, "--unit", unit, "--file", str(path)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{splitter} on {kind} {megabytes} MB failed:\n{done.stderr[-3000:]}")
                row[splitter] = json.loads(done.stdout.splitlines()[-1])
                print(kind, unit, megabytes, splitter, row[splitter], file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def report_lines(rows: list[dict]) -> list[str]:
    lorag, langchain = SPLITTERS
    lines = [
        "## Pathological inputs: lorag's recursive splitter and LangChain's RecursiveCharacterTextSplitter",
        "",
        "One process per cell, one thread. `s` is the process's CPU time for the split, `s/MB` the same per",
        "megabyte (flat down a column of one input = linear), `MB peak` its peak RSS above what it held with the text",
        "loaded. LangChain produces Documents with `add_start_index=True` (chunks with offsets, as lorag returns).",
        "Characters: chunk_size 1000, overlap 200; tokens: all-MiniLM-L6-v2, chunk_size 256, overlap 32.",
        "",
        "| input | unit | MB | lorag s | lorag s/MB | lorag MB peak | LangChain s | LangChain s/MB "
        "| LangChain MB peak | time × LangChain | memory × LangChain | chunks lorag / LangChain |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        a, b, mb = r[lorag], r[langchain], r["megabytes"]
        lines.append(
            f"| {r['input']} | {r['unit']} | {mb:g} | {a['cpu_s']:.2f} | {a['cpu_s'] / mb:.3f} | {a['peak_mb']:.0f} | "
            f"{b['cpu_s']:.2f} | {b['cpu_s'] / mb:.3f} | {b['peak_mb']:.0f} | {a['cpu_s'] / b['cpu_s']:.2f} | "
            f"{a['peak_mb'] / max(b['peak_mb'], 1):.2f} | {a['chunks']} / {b['chunks']} |"
        )
    return [*lines, ""]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=SPLITTERS, required=True)
    parser.add_argument("--unit", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--file", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(child(args.child, args.unit, args.file)))

"""How ``lorag ask``'s defaults were chosen: ``lorag eval-rag`` on the SQuAD *dev* split only (never the test split).

Runs eval-rag over a grid of settings (k, quantization) with the relevance gate off and every no-answer reply the
model begins replaced (``--abstain-confidence 1.0``), two at a time, one core each, then replays two thresholds
offline on the saved answers:

- the relevance gate: a question whose best passage has a dense cosine below it would have been answered "The
  documents do not contain the answer." without calling the model;
- the abstain confidence: a no-answer reply the model gave with at least this probability (the product of its tokens')
  would have been kept (each answer records that probability and the answer given instead).

The answer-length cap is read from the completion lengths of the grounded adapter's answers. Usage::

    PYTHONPATH=src python benchmarks/squad_rag.py --data ../shared/data/squad-v1.1 --out /tmp/squad-rag
    PYTHONPATH=src:integrations python benchmarks/rag_defaults.py --dev /tmp/squad-rag/dev
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lorag.evaluation import QAPrediction, load_questions, score_answers
from lorag.rag.prompt import NO_ANSWER
from rag_answers import single_threaded_env

GATES = (None, 0.1, 0.2, 0.3, 0.4, 0.5)
CONFIDENCES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SHOWN = ("f1", "contains_gold", "citation_precision", "abstention_recall", "answered_rate", "latency_p50_s")
# Latency is that of the run (every unsure no-answer reply answered again), not of the replayed setting.


def run(dev: Path, work: Path, name: str, options: list[str]) -> dict[str, Any]:
    out = work / f"{name}.json"
    command = [
        sys.executable, "-m", "lorag", "eval-rag", "--docs", str(dev / "docs"),
        "--questions", str(dev / "questions.jsonl"), "--index-dir", str(work / "index"),
        "--json", "--no-progress", "--min-relevance", "-1", "--abstain-confidence", "1.0", *options,
    ]  # fmt: skip
    print("$", shlex.join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, env=single_threaded_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    out.write_text(result.stdout, encoding="utf-8")
    return json.loads(result.stdout)


def replayed(predictions: list[QAPrediction], gate: float | None, confidence: float) -> list[QAPrediction]:
    """The answers as the relevance gate at ``gate`` and the abstain confidence ``confidence`` would have left them."""
    kept = []
    for p in predictions:
        best = max((s.get("relevance") or -1.0 for s in p.sources), default=-1.0)
        if gate is not None and best < gate:
            p = dataclasses.replace(p, answer=NO_ANSWER, abstained=True, sources=[])
        elif p.abstain_probability is not None and p.abstain_probability >= confidence:
            p = dataclasses.replace(p, answer=NO_ANSWER, abstained=True)
        kept.append(p)
    return kept


def fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lorag-rag-defaults"))
    parser.add_argument("--ks", default="2,3,4")
    parser.add_argument("--sweep-k", default="2", help="the k whose answers the threshold sweeps replay")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lorag",
            "index",
            "--docs",
            str(args.dev / "docs"),
            "--index-dir",
            str(args.work / "index"),
        ],
        env=single_threaded_env(),
        check=True,
    )
    grid = {f"nf4 k={k}": ["--k", k] for k in args.ks.split(",")}
    grid["none k=3"] = ["--k", "3", "--quantization", "none"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = dict(zip(grid, pool.map(lambda item: run(args.dev, args.work, *item), grid.items()), strict=True))
    questions = load_questions(args.dev / "questions.jsonl", args.dev / "docs")
    print(f"load average {os.getloadavg()[0]:.1f}; {len(questions)} dev questions")
    print("\n| setting | gate | abstain confidence | " + " | ".join(SHOWN) + " | p95 completion tokens |")
    print("| --- | --- | --- |" + " ---: |" * (len(SHOWN) + 1))
    for name, report in reports.items():
        predictions = [QAPrediction(**p) for p in report["questions"]]
        lengths = sorted(p.completion_tokens for p in predictions)
        p95 = lengths[int(0.95 * (len(lengths) - 1))]
        if name == f"nf4 k={args.sweep_k}":
            settings = [(g, 0.0) for g in GATES] + [(0.3, c) for c in CONFIDENCES[1:]]
        else:
            settings = [(None, 0.0), (0.3, 0.4)]
        for gate, confidence in settings:
            metrics = score_answers(questions, replayed(predictions, gate, confidence))
            cells = " | ".join(fmt(metrics[k]) for k in SHOWN)
            shown_gate = "off" if gate is None else gate
            shown_confidence = confidence or "0 (keep every no-answer reply)"
            print(f"| {name} | {shown_gate} | {shown_confidence} | {cells} | {p95} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

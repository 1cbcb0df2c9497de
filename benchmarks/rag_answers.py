"""The main job, end to end: answers to questions over documents, lorag vs the LangChain tutorial RAG (issue #15).

Rows, all on the same SmolLM2-135M-Instruct weights, scored by the same scorer (``lorag.evaluation.score_answers``)
in one run, each single-threaded, ``--parallel`` rows at a time (2 by default, one per core; 1: each row alone):

- ``lorag``: ``lorag eval-rag`` with every default (the shipped grounded-answer adapter included);
- ``lorag --adapter none``: the same without the adapter;
- ``lorag --engine llama.cpp``: the defaults decoded by llama.cpp (``lorag.llm.llama_cpp``; left out, and said so,
  where no ``llama-server`` is built);
- ``lorag --min-answerability 0``: the defaults with the answerability gate off, which the README advises for corpora
  whose questions join facts from several passages (``rag_defaults.md`` section 7); not in the default rows;
- ``langchain tutorial``: ``benchmarks/langchain_tutorial_rag.py`` (RecursiveCharacterTextSplitter 1000/200, FAISS +
  MiniLM, k=4, the classic prompt, fp32 greedy, 160 new tokens).

Data sets (each a ``docs/`` folder and a ``questions.jsonl``): ``--squad``, the *test* split of
``benchmarks/squad_rag.py`` (held-out articles, 300 answerable + 50 unanswerable questions); ``--hotpot``, the
HotpotQA dev extract of ``benchmarks/make_hotpot_extract.py`` (multi-hop; never trained on); ``--set`` (repeatable),
any other such folder, e.g. the FastAPI docs with the questions of ``benchmarks/data/fastapi_docs_questions.jsonl``
(the ``make demo`` job: how-to questions over product documentation). Usage::

    PYTHONPATH=src python benchmarks/squad_rag.py --data ../shared/data/squad-v1.1 --out /tmp/squad-rag
    python benchmarks/make_hotpot_extract.py hotpot_dev_distractor_v1.json --out /tmp/hotpot
    mkdir -p /tmp/fastapi-docs && cp -r ../shared/data/fastapi-docs/md /tmp/fastapi-docs/docs
    cp benchmarks/data/fastapi_docs_questions.jsonl /tmp/fastapi-docs/questions.jsonl
    PYTHONPATH=src:integrations python benchmarks/rag_answers.py --squad /tmp/squad-rag/test --hotpot /tmp/hotpot \
        --set /tmp/fastapi-docs

Writes ``benchmarks/results/rag_answers.md`` and every answer to ``--work`` (JSON per data set and row).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROWS = {
    "lorag": [],
    "lorag --adapter none": ["--adapter", "none"],
    "lorag --engine llama.cpp": ["--engine", "llama.cpp"],
    "langchain tutorial": None,  # not lorag: see langchain_tutorial_rag.py
    "lorag --min-answerability 0": ["--min-answerability", "0"],
}
#: The rows a run without ``--rows`` answers: the issue's three, and the defaults on the other engine.
DEFAULT_ROWS = ("lorag", "lorag --adapter none", "lorag --engine llama.cpp", "langchain tutorial")
COLUMNS = [
    ("EM", "exact_match"),
    ("F1", "f1"),
    ("contains gold", "contains_gold"),
    ("citation precision", "citation_precision"),
    ("cited", "cited_rate"),
    ("supporting in prompt", "supporting_in_prompt"),
    ("abstention precision", "abstention_precision"),
    ("abstention recall", "abstention_recall"),
    ("answered (answerable)", "answered_rate"),
    ("p50 s", "latency_p50_s"),
    ("p95 s", "latency_p95_s"),
]


def single_threaded_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "integrations"), env.get("PYTHONPATH", "")])
    return env


def run_row(name: str, data: Path, work: Path) -> dict[str, Any]:
    """Answer every question of ``data`` with one row's system in a fresh process; its predictions as JSON."""
    out = work / f"{data.name}-{name.replace(' ', '_').replace('-', '')}.json"
    extra = ROWS[name]
    if extra is None:
        command = [sys.executable, __file__, "--langchain-row", str(data), str(out)]
    else:
        command = [
            sys.executable, "-m", "lorag", "eval-rag", "--docs", str(data / "docs"),
            "--questions", str(data / "questions.jsonl"), "--index-dir", str(work / f"index-{data.name}"),
            "--json", "--no-progress", *extra,
        ]  # fmt: skip
    print(f"[{data.name}] {name}: {shlex.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, env=single_threaded_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{name} on {data} failed:\n{result.stderr[-3000:]}")
    if extra is not None:
        out.write_text(result.stdout, encoding="utf-8")
    report = json.loads(out.read_text(encoding="utf-8"))
    report["wall_s"] = time.perf_counter() - started
    return report


def langchain_row(data: Path, out: Path) -> None:
    """The LangChain tutorial's answers to ``data``, scored like ``lorag eval-rag --json`` reports."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from langchain_tutorial_rag import answer_questions
    from lorag.evaluation import QAPrediction, load_questions, score_answers

    questions = load_questions(data / "questions.jsonl", data / "docs")
    raw = [json.loads(line) for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    predictions = [QAPrediction(**p) for p in answer_questions(data / "docs", raw)]
    metrics = {k: v for k, v in score_answers(questions, predictions).items() if k != "questions"}
    payload = {**metrics, "questions": [asdict(p) for p in predictions]}
    out.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def rescore(data: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Every row through the same scorer, from its saved answers (lorag's rows are also scored by eval-rag)."""
    from lorag.evaluation import QAPrediction, load_questions, score_answers

    questions = load_questions(data / "questions.jsonl", data / "docs")
    predictions = [QAPrediction(**p) for p in report["questions"]]
    return dict(score_answers(questions, predictions))


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(data: Path, scored: dict[str, dict[str, Any]]) -> list[str]:
    first = next(iter(scored.values()))
    lines = [
        f"### {data.name}: {first['questions']} questions ({first['answerable']} answerable, "
        f"{first['unanswerable']} unanswerable)",
        "",
        "| row | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "| --- |" + " ---: |" * len(COLUMNS),
    ]
    lines += [f"| {row} | " + " | ".join(fmt(m.get(k)) for _, k in COLUMNS) + " |" for row, m in scored.items()]
    engines = [f"{row}: {m['engine']}" for row, m in scored.items() if m.get("engine")]
    if engines:
        lines += ["", "Answered by " + "; ".join(engines) + "."]
    base, tutorial = scored.get("lorag --adapter none"), scored.get("langchain tutorial")
    ours = scored.get("lorag")
    if tutorial:
        ratios = [f"{row} {m['f1'] / max(tutorial['f1'], 1e-9):.2f}x" for row, m in scored.items() if m is not tutorial]
        lines += ["", "F1 / the tutorial's: " + ", ".join(ratios) + "."]
    if ours and base and tutorial:
        lines += [
            "",
            f"F1: lorag / tutorial = {ours['f1'] / max(tutorial['f1'], 1e-9):.2f}x (target >= 2), "
            f"lorag / lorag without adapter = {ours['f1'] / max(base['f1'], 1e-9):.2f}x (target >= 1.5); "
            f"median s: lorag {ours['latency_p50_s']:.2f} vs tutorial {tutorial['latency_p50_s']:.2f}.",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, help="test folder of squad_rag.py")
    parser.add_argument("--hotpot", type=Path, help="folder of make_hotpot_extract.py")
    parser.add_argument("--set", type=Path, action="append", default=[], help="another docs/ + questions.jsonl folder")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated rows of {list(ROWS)}")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lorag-rag-answers"))
    parser.add_argument("--parallel", type=int, default=2, help="rows answered at once, each on one core")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "rag_answers.md")
    parser.add_argument("--langchain-row", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from lorag.serving import cached_llama_server

    if args.langchain_row:
        langchain_row(*args.langchain_row)
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if unknown := [r for r in rows if r not in ROWS]:
        parser.error(f"unknown rows {unknown}: choose among {list(ROWS)}")
    unbuilt = "lorag --engine llama.cpp" in rows and cached_llama_server() is None
    if unbuilt:  # said in the report too
        rows.remove("lorag --engine llama.cpp")
        print("no llama-server is built: the llama.cpp row is left out", file=sys.stderr)
    datasets = [d for d in (args.squad, args.hotpot, *args.set) if d is not None]
    if missing := [str(d) for d in datasets if not (d / "docs").is_dir() or not (d / "questions.jsonl").is_file()]:
        parser.error(f"each set is a folder with docs/ and questions.jsonl; not so: {', '.join(missing)}")
    args.work.mkdir(parents=True, exist_ok=True)
    started, load_before = datetime.now(timezone.utc), os.getloadavg()

    for data in datasets:  # build each index once, before rows share it
        if any(ROWS[row] is not None for row in rows):
            index = ["--docs", str(data / "docs"), "--index-dir", str(args.work / f"index-{data.name}")]
            subprocess.run([sys.executable, "-m", "lorag", "index", *index], env=single_threaded_env(), check=True)
    jobs = [(data, row) for data in datasets for row in rows]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:  # a failing row must not cancel the others
        futures = [pool.submit(run_row, row, data, args.work) for data, row in jobs]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        raise RuntimeError("\n\n".join(map(str, failed)))
    reports = [f.result() for f in futures]
    results: list[tuple[Path, dict[str, dict[str, Any]]]] = []
    for data in datasets:
        scored = {
            row: {**rescore(data, r), "engine": r.get("engine")}
            for (d, row), r in zip(jobs, reports, strict=True)
            if d == data
        }
        results.append((data, scored))
    finished, load_after = datetime.now(timezone.utc), os.getloadavg()
    command = "PYTHONPATH=src:integrations python benchmarks/rag_answers.py " + shlex.join(sys.argv[1:])
    at_once = (
        f"{args.parallel} rows at a time (so each row ran beside another, alike for all)"
        if args.parallel > 1
        else "one row at a time (each alone on the machine)"
    )
    lines = [
        "# Answers over documents: lorag vs the LangChain tutorial RAG (benchmarks/rag_answers.py)",
        "",
        f"- date: {started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC ({(finished - started).total_seconds() / 60:.0f} min)",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; every row single-threaded, {at_once}; "
        f"load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end",
        f"- command: `{command}`",
        "- model: SmolLM2-135M-Instruct for every row (lorag: each row's engine below; tutorial: fp32)",
        *(["- the llama.cpp row was left out: no `llama-server` is built here"] if unbuilt else []),
        "- scorer: `lorag.evaluation.score_answers` (SQuAD normalisation after removing [n] citations; EM, F1 and "
        "contains-gold over answerable questions, abstentions scoring 0; citation precision over cited passages of "
        "answered questions; latency per question, retrieval + generation)",
        "",
    ]
    for data, scored in results:
        lines += [*table(data, scored), ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

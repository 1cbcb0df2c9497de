"""lorag's training methods side by side on the grounded-answer task: one row per method, the same records, steps and
evaluation for every row.

Each row trains with ``lorag.training.qlora.train_adapter`` in its own process (so peak memory is that row's alone)
and reports: trainable parameters (and % of the model), the saved file size (adapter, or whole model for full
fine-tuning), training time for the same number of steps, peak resident memory of the process during training, token
F1 of greedy answers on held-out records (citations removed, SQuAD normalisation), decode ms/token through
``lorag.llm.LoragEngine`` with the row's adapter chosen per request against the bare base (same process, prompts and
thread), and forgetting: general-text perplexity with the row on minus without (``peft_measures`` says which text
and why). The distilled row uses the full fine-tuning row's output as its teacher, so it runs last. Each method keeps
its usual learning rate (shown).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/squad_rag.py --data ../shared/data/squad-v1.1 --out /tmp/squad-rag \\
        --train-questions 520
    PYTHONPATH=src python benchmarks/peft_methods.py --data /tmp/squad-rag/train.jsonl --steps 100 \\
        --out benchmarks/results/peft_methods.md

    # what a shared 2-core CPU allowed (benchmarks/results/peft_methods.md): few steps, short records
    PYTHONPATH=src python benchmarks/peft_methods.py --data /tmp/squad-rag/train.jsonl --steps 10 --examples 200 \\
        --eval 20 --batch-size 2 --max-length 384 --decode-prompts 2 --decode-tokens 16 --decode-rounds 2 \\
        --out benchmarks/results/peft_methods.md

    # a smoke run on a tiny random Llama (tests/tiny_models.py):
    PYTHONPATH=src python benchmarks/peft_methods.py --data /tmp/squad-rag/train.jsonl --tiny --steps 4 \\
        --examples 16 --eval 4 --max-length 2048 --out benchmarks/results/peft_methods_tiny.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: (row name, QLoRAConfig settings). ``teacher="<full>"`` is replaced by the full fine-tuning row's output.
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("full fine-tuning", {"method": "full", "quantization": "none", "learning_rate": 2e-5}),
    ("LoRA r=8", {"method": "lora", "quantization": "none", "rank": 8, "alpha": 16, "learning_rate": 2e-4}),
    ("LoRA r=16", {"method": "lora", "quantization": "none", "rank": 16, "alpha": 32, "learning_rate": 2e-4}),
    ("QLoRA r=16 (nf4)", {"method": "lora", "quantization": "nf4", "rank": 16, "alpha": 32, "learning_rate": 2e-4}),
    ("IA3", {"method": "ia3", "quantization": "none", "learning_rate": 3e-3}),
    ("prompt tuning (20 tokens)", {"method": "prompt-tuning", "quantization": "none", "learning_rate": 3e-2}),
    ("prefix tuning (20 tokens)", {"method": "prefix-tuning", "quantization": "none", "learning_rate": 1e-2}),
    ("bottleneck, Houlsby, /16", {"method": "bottleneck", "quantization": "none", "learning_rate": 1e-3}),
    (
        "LoRA r=16 distilled from full FT",
        {"method": "lora", "quantization": "none", "learning_rate": 2e-4, "teacher": "<full>", "kd_alpha": 0.5},
    ),
]


def build_tiny_base(work: Path) -> Path:
    """The tests' tiny Llama, 64 wide (for 4-bit blocks) and with a 4096-token context for the long RAG prompts."""
    sys.path.insert(0, str(REPO / "tests"))
    from transformers import AutoConfig

    from tiny_models import build_tiny_causal_lm, widen_tiny_llm

    narrow = build_tiny_causal_lm(work / "tiny-narrow")
    base = widen_tiny_llm(narrow, work / "tiny-base")
    config = AutoConfig.from_pretrained(base)
    config.max_position_embeddings = 4096
    config.save_pretrained(base)
    return base


def split_records(
    data: Path, n_train: int, n_eval: int, work: Path, base: str, max_length: int
) -> tuple[Path, list[dict[str, Any]]]:
    """The first ``n_train`` records to train on; held out, the last ``n_eval`` records that fit ``max_length``
    tokens (the trainer skips longer ones, so the held-out prompts are like the trained ones)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    lines = [line for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = work / "train.jsonl"
    train.write_text("\n".join(lines[:n_train]) + "\n", encoding="utf-8")
    held_out = []
    for line in reversed(lines[n_train:]):
        record = json.loads(line)
        text = tokenizer.apply_chat_template(record["messages"], tokenize=False)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= max_length:
            held_out.append(record)
    if len(held_out) < n_eval:
        raise SystemExit(f"{data} has {len(held_out)} records after the first {n_train} that fit; --eval {n_eval}")
    return train, held_out[:n_eval][::-1]


def measure(spec: dict[str, Any], output: Path) -> dict[str, Any]:
    """Forgetting (general-text perplexity without and with the row), held-out F1 and decode ms/token of a trained
    row; see ``peft_measures``."""
    from transformers import AutoTokenizer

    import peft_measures as pm

    settings, base, ev, records = spec["settings"], spec["base"], spec["eval"], spec["eval_records"]
    started = time.perf_counter()
    windows = pm.text_windows(AutoTokenizer.from_pretrained(base), ev["ppl_tokens"], ev["ppl_window"])
    model = pm.load_base(base, settings)
    out = {"ppl_base": pm.perplexity(model, windows), "ppl_tokens": len(windows) * len(windows[0])}
    out["ppl_row"] = pm.perplexity(pm.attach(model, output, settings), windows)
    del model
    out["ppl_s"] = time.perf_counter() - started
    engine, row_engine, adapter = pm.engines(base, output, settings)
    try:
        out["f1"] = pm.held_out_f1(row_engine, adapter, records)
        out["f1_s"] = time.perf_counter() - started - out["ppl_s"]
        out["ms_base"], out["ms_row"] = pm.decode_overhead(
            engine, row_engine, adapter, records[: ev["decode_prompts"]], ev["decode_tokens"], ev["decode_rounds"]
        )
    finally:
        engine.close()
        if row_engine is not engine:
            row_engine.close()
    out["measure_s"] = time.perf_counter() - started
    return out


def base_f1(spec: dict[str, Any]) -> dict[str, Any]:
    """Held-out F1 of the bare full-precision base, the reference every row's F1 is read against."""
    import peft_measures as pm
    from lorag.llm import LoragEngine

    engine = LoragEngine(spec["base"], quantization="none", num_threads=1)
    try:
        return {"f1": pm.held_out_f1(engine, None, spec["eval_records"])}
    finally:
        engine.close()


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one row in this process and measure it (called in a child process by ``main``)."""
    from lorag.training.config import QLoRAConfig
    from lorag.training.qlora import train_adapter

    config = QLoRAConfig(**spec["settings"], **spec["common"])
    output = Path(spec["output"])
    result = train_adapter(spec["base"], spec["train"], output, config, show_progress=False)
    load = os.getloadavg()[0]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; before any evaluation
    meta = result.metadata
    del result
    row = {
        "trainable": meta["trainable_parameters"],
        "total": meta["total_parameters"],
        "file_kib": sum(p.stat().st_size for p in output.glob("*.safetensors")) / 2**10,
        "train_s": meta["train_time_s"],
        "peak_mib": peak_mib,
        "load_after_training": load,
        "final_loss": meta["final_train_loss"],
    }
    return row | measure(spec, output)


def table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """The Markdown table, one line per row."""
    head = "| method | lr | trainable params | % of model | file KiB | train s | peak RSS MiB | final loss | F1 "
    head += "| decode ms/token base -> row | decode ratio | general ppl base -> row | forgetting (ppl change) | load |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, settings, r in rows:
        f1 = "n/a" if r["f1"] is None else f"{r['f1']:.3f}"
        lines.append(
            f"| {name} | {settings['learning_rate']:g} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.3f} "
            f"| {r['file_kib']:,.0f} | {r['train_s']:.1f} | {r['peak_mib']:.0f} | {r['final_loss']:.3f} | {f1} "
            f"| {r['ms_base']:.1f} -> {r['ms_row']:.1f} | {r['ms_row'] / r['ms_base']:.2f}x "
            f"| {r['ppl_base']:.2f} -> {r['ppl_row']:.2f} | {r['ppl_row'] - r['ppl_base']:+.2f} "
            f"| {r['load_after_training']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="grounded-answer chat records (train.jsonl of squad_rag.py)")
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--tiny", action="store_true", help="use the tests' tiny random Llama (a smoke run)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--examples", type=int, default=400, help="training records (from the start of --data)")
    parser.add_argument("--eval", type=int, default=40, help="held-out records (from the end of --data)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--decode-prompts", type=int, default=3, help="held-out prompts timed for decode overhead")
    parser.add_argument("--decode-tokens", type=int, default=16, help="tokens decoded per timed request")
    parser.add_argument("--decode-rounds", type=int, default=2, help="best of this many timings per prompt")
    parser.add_argument("--ppl-tokens", type=int, default=1024, help="general-text tokens scored for forgetting")
    parser.add_argument("--ppl-window", type=int, default=256, help="tokens per scored window")
    parser.add_argument("--only", nargs="*", help="row names to run (default: all)")
    parser.add_argument("--out", type=Path, help="write the results table (Markdown) here")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row's spec as JSON, run in a child
    args = parser.parse_args(argv)
    if args.row:
        spec = json.loads(args.row)
        print(json.dumps(base_f1(spec) if spec["settings"] is None else run_row(spec)))
        return 0
    if args.data is None:
        parser.error("--data is required")

    work = Path(tempfile.mkdtemp(prefix="lorag-peft-methods-"))
    if args.tiny:
        base = str(build_tiny_base(work))
    else:
        from lorag.models import resolve_model

        base = str(resolve_model(args.base))
    train, eval_records = split_records(args.data, args.examples, args.eval, work, base, args.max_length)
    common = {"max_steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length}
    common |= {"eval_fraction": 0.0, "seed": 0, "overflow": "skip"}
    ev = {k: getattr(args, k) for k in ("decode_prompts", "decode_tokens", "decode_rounds", "ppl_tokens", "ppl_window")}
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    results: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for name, settings in [("bare base", None), *ROWS]:
        if args.only and name not in args.only and settings is not None:
            continue
        settings = None if settings is None else dict(settings)
        if settings and settings.get("teacher") == "<full>":
            settings["teacher"] = str(work / "full fine-tuning")
        spec = {"base": base, "train": str(train), "output": str(work / name), "settings": settings}
        spec |= {"common": common, "eval_records": eval_records, "eval": ev}
        print(f"[{name}] started {datetime.now(timezone.utc):%H:%M:%S}", file=sys.stderr, flush=True)
        child = [sys.executable, __file__, "--row", json.dumps(spec)]
        done = subprocess.run(child, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"row {name!r} failed:\n{done.stderr[-4000:]}")
        results.append((name, settings, json.loads(done.stdout.strip().splitlines()[-1])))
        print(json.dumps(results[-1][2]), file=sys.stderr, flush=True)

    reference = results.pop(0)[2]["f1"] if results[0][0] == "bare base" else None
    body = table(results)
    label = "TINY SMOKE RUN: a random 2-layer Llama (tests/tiny_models.py), so the losses and F1 say nothing about the"
    label += " methods; the sizes, relative times and the harness are what it checks"
    header = [
        f"# Training methods on the grounded-answer task ({'tiny random model' if args.tiny else args.base})",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, no GPU, shared with other jobs",
        f"- `uptime` before: {load_before}",
        f"- `uptime` after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}",
        f"- command: `PYTHONPATH=src python benchmarks/peft_methods.py {' '.join(argv or sys.argv[1:])}`",
        f"- {args.examples} training records, {args.eval} held-out, {args.steps} steps of batch {args.batch_size}, "
        f"max length {args.max_length} (longer records skipped), seed 0, one run",
        "- peak RSS: the row's own process (Python, torch, the base and training); final loss: the last logged "
        "training loss, which for the distilled row is a*CE + (1-a)*T^2*KL, not comparable with the others; load: "
        "the 1-minute load average when the row's training ended (2 cores: above 2, the row shared them)",
        "- F1 and decode through `lorag.llm.LoragEngine` on one thread, greedy: the adapter chosen per request on the "
        "base (the full fine-tuned model served as its own base; QLoRA on the nf4 base, against the bare nf4 base); "
        "F1: the held-out records submitted together (answers of at most 32 tokens, citations removed)",
        f"- decode ms/token: one request at a time, exactly {args.decode_tokens} tokens, prefill excluded, on "
        f"{args.decode_prompts} held-out prompts; base and row interleaved, best of {args.decode_rounds} per prompt, "
        "mean over prompts",
        f"- the bare base (full precision, no training) scores F1 "
        f"{reference if reference is None else round(reference, 3)} on the same held-out records",
        f"- forgetting: perplexity of the first {args.ppl_tokens} tokens of the bundled FastAPI docs "
        f"(`examples/fastapi-docs`, out of the SQuAD domain) in windows of {args.ppl_window}, with the row minus "
        "without (the QLoRA row against its nf4 base)",
    ]
    if args.tiny:
        header.append(f"- **{label}**")
    text = "\n".join(header) + "\n\n" + body + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    sys.exit(code)

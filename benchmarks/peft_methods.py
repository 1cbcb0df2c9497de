"""lorag's training methods side by side on the grounded-answer task: one row per method, the same records, steps and
evaluation for every row.

Each row trains with ``lorag.training.qlora.train_adapter`` in its own process (so peak memory is that row's alone)
and reports: trainable parameters (and % of the model), the saved file size (adapter, or whole model for full
fine-tuning), training time for the same number of steps, peak resident memory of the process during training, and
token F1 of greedy answers on held-out records (citations removed, SQuAD normalisation). The distilled row uses the
full fine-tuning row's output as its teacher, so it runs last. Each method keeps its usual learning rate (shown).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/squad_rag.py --data ../shared/data/squad-v1.1 --out /tmp/squad-rag \\
        --train-questions 520
    PYTHONPATH=src python benchmarks/peft_methods.py --data /tmp/squad-rag/train.jsonl --steps 100 \\
        --out benchmarks/results/peft_methods.md

    # a smoke run on a tiny random Llama (tests/tiny_models.py), all a shared 2-core machine allows:
    PYTHONPATH=src python benchmarks/peft_methods.py --data /tmp/squad-rag/train.jsonl --tiny --steps 4 \\
        --examples 16 --eval 4 --out benchmarks/results/peft_methods_tiny.md

Not measured yet (the issue's full table): per-token decode overhead vs the bare base, and forgetting (perplexity
change on general text with the adapter on).
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


def split_records(data: Path, n_train: int, n_eval: int, work: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The first ``n_train`` records to train on; ``n_eval`` records from the end of the file held out."""
    lines = [line for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n_train + n_eval > len(lines):
        raise SystemExit(f"{data} has {len(lines)} records; --examples + --eval ask for {n_train + n_eval}")
    train = work / "train.jsonl"
    train.write_text("\n".join(lines[:n_train]) + "\n", encoding="utf-8")
    return train, [json.loads(line) for line in lines[len(lines) - n_eval :]]


def held_out_f1(base: str, output: Path, settings: dict[str, Any], records: list[dict[str, Any]]) -> float | None:
    """Mean token F1 of greedy answers (32 new tokens) against each record's last assistant turn."""
    if not records:
        return None
    import torch
    from transformers import AutoTokenizer

    from lorag.evaluation.answers import f1_score, strip_citations
    from lorag.training.config import QLoRAConfig
    from lorag.training.loading import load_frozen_model

    config = QLoRAConfig(**{k: v for k, v in settings.items() if k != "teacher"})
    if settings["method"] == "full":
        model = load_frozen_model(str(output), config)
    else:
        from peft import PeftModel

        import lorag.peft_bottleneck  # noqa: F401  # registers the bottleneck method

        model = PeftModel.from_pretrained(load_frozen_model(base, config), str(output))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    scores = []
    for record in records:
        messages, gold = record["messages"][:-1], record["messages"][-1]["content"]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        scores.append(f1_score(strip_citations(answer), strip_citations(gold)))
    return sum(scores) / len(scores)


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one row in this process and measure it (called in a child process by ``main``)."""
    from lorag.training.config import QLoRAConfig
    from lorag.training.qlora import train_adapter

    settings = spec["settings"]
    config = QLoRAConfig(**settings, **spec["common"])
    output = Path(spec["output"])
    result = train_adapter(spec["base"], spec["train"], output, config, show_progress=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    meta = result.metadata
    return {
        "trainable": meta["trainable_parameters"],
        "total": meta["total_parameters"],
        "file_kib": sum(p.stat().st_size for p in output.glob("*.safetensors")) / 2**10,
        "train_s": meta["train_time_s"],
        "peak_mib": peak_mib,
        "final_loss": meta["final_train_loss"],
        "f1": held_out_f1(spec["base"], output, settings, spec["eval_records"]),
    }


def table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    head = "| method | lr | trainable params | % of model | file KiB | train s | peak RSS MiB | final loss | F1 |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, settings, r in rows:
        f1 = "n/a" if r["f1"] is None else f"{r['f1']:.3f}"
        lines.append(
            f"| {name} | {settings['learning_rate']:g} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.3f} "
            f"| {r['file_kib']:,.0f} | {r['train_s']:.1f} | {r['peak_mib']:.0f} | {r['final_loss']:.3f} | {f1} |"
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
    parser.add_argument("--only", nargs="*", help="row names to run (default: all)")
    parser.add_argument("--out", type=Path, help="write the results table (Markdown) here")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row's spec as JSON, run in a child
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return 0
    if args.data is None:
        parser.error("--data is required")

    work = Path(tempfile.mkdtemp(prefix="lorag-peft-methods-"))
    base = str(build_tiny_base(work)) if args.tiny else args.base
    train, eval_records = split_records(args.data, args.examples, args.eval, work)
    common = {"max_steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length}
    common |= {"eval_fraction": 0.0, "seed": 0, "overflow": "skip"}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    results: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for name, settings in ROWS:
        if args.only and name not in args.only:
            continue
        settings = dict(settings)
        if settings.get("teacher") == "<full>":
            settings["teacher"] = str(work / "full fine-tuning")
        spec = {"base": base, "train": str(train), "output": str(work / name), "settings": settings}
        spec |= {"common": common, "eval_records": eval_records}
        print(f"[{name}]", file=sys.stderr, flush=True)
        child = [sys.executable, __file__, "--row", json.dumps(spec)]
        done = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
        results.append((name, settings, json.loads(done.stdout.strip().splitlines()[-1])))

    body = table(results)
    label = "TINY SMOKE RUN: a random 2-layer Llama (tests/tiny_models.py), so the losses and F1 say nothing about the"
    label += " methods; the sizes, relative times and the harness are what it checks"
    header = [
        f"# Training methods on the grounded-answer task ({'tiny random model' if args.tiny else base})",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end",
        f"- command: `PYTHONPATH=src python benchmarks/peft_methods.py {' '.join(argv or sys.argv[1:])}`",
        f"- {args.examples} training records, {args.eval} held-out, {args.steps} steps of batch {args.batch_size}, "
        f"max length {args.max_length} (longer records skipped), seed 0, one run",
        "- peak RSS: the row's own process (Python, torch, the base and training); final loss: the last logged "
        "training loss, which for the distilled row is a*CE + (1-a)*T^2*KL, not comparable with the others",
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

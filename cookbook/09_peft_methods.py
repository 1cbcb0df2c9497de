"""Recipe 9: lorag's training methods side by side: LoRA, IA3 and prompt tuning (or any of ``--methods``) trained
briefly on the same small data, then served per request on one base; a comparison plot.

The data is built from the bundled FastAPI docs (``examples/fastapi-docs``): for every section, the question "what
does the section <heading> of the page <title> start with?" and the section's first sentence as the answer, a chat
record in the JSONL shape ``lorag train-adapter`` reads. Each method trains with ``lorag.training.qlora.train_adapter``
(the code behind ``lorag train-adapter --method ...``) on the same records, steps and seed, at its usual learning
rate, on the full-precision base; a quarter of the records is held out for the eval loss. Then one
``lorag.llm.LoragEngine`` serves all the adapters on ONE base, each request choosing its adapter, whatever its kind.

    python cookbook/09_peft_methods.py                  # SmolLM2-135M-Instruct, 30 steps per method
    python cookbook/09_peft_methods.py --size smoke     # 4 steps per method (CI runs it on a tiny model: --base)
    python cookbook/09_peft_methods.py --methods lora ia3 bottleneck prefix-tuning
    # one row from the command line, on the data file the recipe writes next to its results:
    lorag train-adapter --method ia3 --base smollm2-135m-instruct --data docs_sections.jsonl --output adapters/ia3
                        --max-steps 30 --lr 3e-3

``peft_methods.png`` draws, left, each method's training loss per step; middle, its trainable parameters (log
scale) with its held-out loss written on the bar. When ``benchmarks/results/peft_methods.md`` (the benchmark of every
method on the SQuAD grounded-answer task, ``benchmarks/peft_methods.py``) is in the checkout, a right panel draws its
held-out F1 against its forgetting per method, and ``results.json`` carries its rows.

What to look for: the parameter counts span orders of magnitude (IA3 trains a few ten-thousand scales, prompt tuning
a few virtual-token embeddings, LoRA millions), yet every adapter is a small file and serves on the same base; the
loss curves show how fast each moves in few steps at its usual rate. With this little training the curves, not the
answers, are the result: which method to pick is what the committed benchmark table (and the README) discuss.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DOCS, ROOT, parser, write_results
from lorag.training.qlora import QLoRAConfig, train_adapter

#: method -> (its usual learning rate, extra QLoRAConfig settings); the rates of ``benchmarks/peft_methods.py``.
METHODS: dict[str, tuple[float, dict[str, Any]]] = {
    "lora": (2e-4, {"rank": 8, "alpha": 16}),
    "ia3": (3e-3, {}),
    "prompt-tuning": (3e-2, {"num_virtual_tokens": 20}),
    "prefix-tuning": (1e-2, {"num_virtual_tokens": 20}),
    "bottleneck": (1e-3, {}),
}
TABLE = ROOT / "benchmarks" / "results" / "peft_methods.md"
HEADING = re.compile(r"^(#+)\s+(.*?)\s*(\{ #.*\})?$")


def doc_sections() -> list[tuple[str, str, str]]:
    """(page title, section heading, the section's first prose sentence) for every section of the bundled docs."""
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        if path.name == "SOURCE.md":
            continue
        title = heading = None
        in_code = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and (m := HEADING.match(line)):
                title = m.group(2) if len(m.group(1)) == 1 else title
                heading = m.group(2)
            elif not in_code and heading and line.strip()[:1].isalpha():
                found.append((title or heading, heading, re.split(r"(?<=[.!?:])\s", line.strip())[0]))
                heading = None
    return found


def write_data(path: Path, sections: list[tuple[str, str, str]]) -> Path:
    """One chat record per section (loss on the assistant turn only)."""
    import json

    with path.open("w", encoding="utf-8") as f:
        for title, heading, sentence in sections:
            question = f'In the FastAPI docs page "{title}", what does the section "{heading}" start with?'
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": sentence}]
            f.write(json.dumps({"messages": chat}) + "\n")
    return path


def train_method(base: str, data: Path, out: Path, method: str, steps: int, batch_size: int) -> dict[str, Any]:
    """Train one method and report its size, time, loss curve and held-out loss."""
    lr, extra = METHODS[method]
    config = QLoRAConfig(
        method=method,
        quantization="none",
        learning_rate=lr,
        max_steps=steps,
        batch_size=batch_size,
        max_length=256,
        eval_fraction=0.25,
        eval_steps=steps,
        early_stopping_patience=None,
        logging_steps=1,
        seed=0,
        **extra,
    )
    started = time.perf_counter()
    meta = train_adapter(base, data, out, config, show_progress=False).metadata
    return {
        "method": method,
        "learning_rate": lr,
        "trainable_parameters": meta["trainable_parameters"],
        "percent_of_model": round(100 * meta["trainable_parameters"] / meta["total_parameters"], 4),
        "file_kib": round(sum(p.stat().st_size for p in out.glob("*.safetensors")) / 2**10, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "losses": [row["loss"] for row in meta["log_history"] if "loss" in row],
        "eval_loss": meta["final_eval_loss"],
    }


def serve(base: str, adapters: dict[str, Path], question: str, max_tokens: int) -> dict[str, str]:
    """One engine, one base: the same question answered by the bare base and by each adapter, chosen per request."""
    from lorag.llm import LoragEngine

    engine = LoragEngine(base, quantization="none", adapters={k: str(v) for k, v in adapters.items()})
    try:
        messages = [{"role": "user", "content": question}]
        handles = {name: engine.submit(messages=messages, adapter=name, max_tokens=max_tokens) for name in adapters}
        handles["base"] = engine.submit(messages=messages, max_tokens=max_tokens)
        return {name: h.result().text for name, h in handles.items()}
    finally:
        engine.close()


def committed_table(path: Path = TABLE) -> list[dict[str, str]]:
    """The rows of the benchmark's Markdown table, column name -> cell text ([] when the file is absent)."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def plot(rows: list[dict[str, Any]], table: list[dict[str, str]], path: Path) -> Path:
    """Loss curves, trainable parameters (and held-out loss), and the committed table's F1 and forgetting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if table else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    for row in rows:
        axes[0].plot(range(1, len(row["losses"]) + 1), row["losses"], marker="o", ms=3, label=row["method"])
    axes[0].set(xlabel="step", ylabel="training loss", title="training loss, same data and steps")
    axes[0].legend()
    names = [row["method"] for row in rows]
    bars = axes[1].bar(names, [row["trainable_parameters"] for row in rows], color="tab:blue")
    axes[1].set(yscale="log", ylabel="trainable parameters", title="size (held-out loss on the bars)")
    for bar, row in zip(bars, rows, strict=True):
        label = "n/a" if row["eval_loss"] is None else f"{row['eval_loss']:.2f}"
        axes[1].annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    if table:  # what each method bought (F1) against what it cost the base elsewhere (forgetting)
        for r in table:
            x, y = float(r["forgetting (ppl change)"]), float(r["F1"])
            axes[2].scatter(x, y, color="tab:red")
            axes[2].annotate(r["method"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axes[2].axvline(0, color="grey", lw=0.5)
        axes[2].set(xlabel="forgetting: general-text perplexity change", ylabel="held-out F1")
        axes[2].set_title("benchmarks/results/peft_methods.md", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    p = parser(__doc__.splitlines()[0], "09_peft_methods")
    p.add_argument("--base", default="smollm2-135m-instruct", help="base model (short name or directory)")
    p.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=["lora", "ia3", "prompt-tuning"])
    args = p.parse_args()
    smoke = args.size == "smoke"
    steps, batch_size = (4, 2) if smoke else (30, 4)
    sections = doc_sections()
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_data(args.out / "docs_sections.jsonl", sections[:24] if smoke else sections)
    work = Path(tempfile.mkdtemp(prefix="lorag-recipe9-"))
    rows = [train_method(args.base, data, work / m, m, steps, batch_size) for m in args.methods]
    answers = serve(args.base, {m: work / m for m in args.methods}, "What is FastAPI?", 12 if smoke else 40)
    table = committed_table()
    plot(rows, table, args.out / "peft_methods.png")
    write_results(
        args.out,
        {
            "base": args.base,
            "records": len(sections[:24] if smoke else sections),
            "steps": steps,
            "batch_size": batch_size,
            "methods": rows,
            "answers": answers,
            "committed_table": table,
            "plot": "peft_methods.png",
        },
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Recipe 6: serve several LoRA adapters to concurrent requests; requests for different adapters share forward passes.

A ``LoragEngine`` holds one NF4 SmolLM2-135M-Instruct and four LoRA adapters (random weights made with peft,
``init_lora_weights=False``, rank 8 and alpha 32 on every linear layer: enough for each to answer differently). The same
requests, spread over the adapters (and the bare base), are served four ways:

- ``sequential``: one by one, each ``engine.generate`` waiting for the previous one;
- ``threads``: all at once from a thread pool (``engine.generate`` is thread-safe);
- ``asyncio``: all at once with ``asyncio.gather(engine.agenerate(...))``;
- ``naive``: what a plain transformers + peft integration does: a second NF4 copy of the base as a ``PeftModel``
  with the same four adapters, one lock around it, and ``set_adapter`` + ``generate`` per request, from threads.

The engine's scheduler runs every active request's next token in ONE forward pass, each row on its own adapter. It
exposes two counters, read here before and after each mode: ``engine.scheduler.steps`` (decode forward passes) and
``engine.scheduler.max_rows_seen`` (the widest one). One by one, each generated token after the first costs a forward
pass; together, a pass serves every request at once. The recipe checks that each concurrent greedy output is token
for token the output the same request gets alone (``exact_batching=True``: each weight product of a step runs per
row, ``lorag.llm.rowwise``), and draws tokens/s and forward passes per mode (``throughput.png``).

    python cookbook/06_concurrent_adapters.py                 # 16 requests, 32 tokens each
    python cookbook/06_concurrent_adapters.py --size smoke    # 8 requests, 8 tokens each (CI)

Figures (``--size full``: 16 requests of 32 tokens over the base + 4 adapters; 2026-12-06 07:18 UTC on a 2-core
CPU, no GPU, nothing else running (load average 0.4-0.9), one thread):

| mode | tokens/s | decode forward passes | widest pass (rows) |
| --- | --- | --- | --- |
| sequential | 16.6 | 496 | 1 |
| naive lock + ``set_adapter`` | 18.1 | | |
| threads | 29.8 | 32 | 16 |
| asyncio | 29.2 | 32 | 16 |

Every concurrent output was token for token its solo output (``identical_to_solo``). Together, 16 requests cost 32
forward passes instead of 496, but the gain in tokens/s is smaller (1.6-1.8x the naive server): exactness runs
each row's products on the one-row kernel, so a wide pass costs nearly a row's work per row; only the rest of the
step is shared. Without ``exact_batching`` (the default) one product serves all rows, for more throughput and
outputs equal to the solo ones up to rounding (``benchmarks/adapters.py`` measures both at 8 requests, with adapter
switch and load times).
The adapters are random, so their text is gibberish; what matters is that each differs and that they batch.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from _common import parser, write_results
from lorag.llm import LoragEngine, load_base
from lorag.models import resolve_model

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "How do I declare a path parameter in FastAPI?",
    "Write a short poem about the sea.",
    "What is the capital of France?",
    "List three uses of retrieval augmented generation.",
    "Summarise the plot of Hamlet in one sentence.",
    "How do I reverse a list in Python?",
    "Why is the sky blue?",
    "Give me a tip for writing clear documentation.",
]


def make_adapters(root: Path, count: int, rank: int = 8, alpha: int = 32) -> dict[str, Path]:
    """Random LoRA adapters saved as standard peft directories (one float32 copy of the base, re-used)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32)
    dirs = {}
    for i in range(count):
        torch.manual_seed(100 + i)
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", init_lora_weights=False)
        peft_model = get_peft_model(base, config)
        dirs[f"adapter{i}"] = root / f"adapter{i}"
        peft_model.save_pretrained(dirs[f"adapter{i}"])
        base = peft_model.unload()  # the bare base again, for the next adapter
    return dirs


def requests(n: int, names: list[str]) -> list[tuple[str, str | None]]:
    """(prompt, adapter) pairs: each prompt goes to the bare base (None) and every adapter in turn."""
    options: list[str | None] = [None, *names]
    return [(PROMPTS[i // len(options) % len(PROMPTS)], options[i % len(options)]) for i in range(n)]


class Counters:
    """Decode passes and widest batch during a block, from the scheduler's public counters."""

    def __init__(self, engine: LoragEngine) -> None:
        self.scheduler = engine.scheduler

    def __enter__(self) -> Counters:
        self.steps0 = self.scheduler.steps
        self.scheduler.max_rows_seen = 0
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.steps = self.scheduler.steps - self.steps0
        self.max_rows = self.scheduler.max_rows_seen


def summary(outputs: list[Any], counters: Counters | None, seconds: float) -> dict[str, Any]:
    tokens = sum(len(ids) for ids in outputs)
    row: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2),
        "requests_per_s": round(len(outputs) / seconds, 3),
    }
    if counters is not None:
        row["decode_forward_passes"] = counters.steps
        row["max_rows_per_pass"] = counters.max_rows
    return row


def naive(dirs: dict[str, Path], plan: list[tuple[str, str | None]], max_tokens: int) -> tuple[list[list[int]], float]:
    """One lock around a peft model: ``set_adapter`` (or ``disable_adapter``) + ``generate`` per request."""
    from peft import PeftModel

    base = load_base(MODEL, quantization="nf4", device="cpu")  # a second copy: the naive server owns its own model
    names = list(dirs)
    model = PeftModel.from_pretrained(base.model, str(dirs[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(dirs[name]), adapter_name=name)
    model.eval()
    tokenizer = base.tokenizer
    lock = threading.Lock()

    def one(prompt: str, adapter: str | None) -> list[int]:
        chat = [{"role": "user", "content": prompt}]
        enc = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with lock, torch.inference_mode():
            if adapter is None:
                with model.disable_adapter():
                    out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
            else:
                model.set_adapter(adapter)
                out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
        return out[0, enc["input_ids"].shape[1] :].tolist()

    one(*plan[0])  # warm-up, as for the engine
    started = time.perf_counter()
    with ThreadPoolExecutor(len(plan)) as pool:
        outputs = list(pool.map(lambda r: one(*r), plan))
    return outputs, time.perf_counter() - started


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    modes = list(results)
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colours = ["tab:gray", "tab:red", "tab:blue", "tab:green"][: len(modes)]
    bars = ax1.bar(modes, [results[m]["tokens_per_s"] for m in modes], color=colours)
    ax1.bar_label(bars, fmt="%.1f")
    ax1.set_ylabel("generated tokens / s")
    ax1.set_title("throughput, same requests")
    engine_modes = [m for m in modes if "decode_forward_passes" in results[m]]
    bars = ax2.bar(engine_modes, [results[m]["decode_forward_passes"] for m in engine_modes], color="tab:purple")
    ax2.bar_label(bars)
    ax2.set_ylabel("decode forward passes (engine.scheduler.steps)")
    ax2.set_title("forward passes: one per token vs shared")
    for ax in (ax1, ax2):
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def main() -> None:
    p = parser(__doc__.splitlines()[0], "06_concurrent_adapters")
    p.add_argument("--no-naive", action="store_true", help="skip the lock + set_adapter baseline (loads a 2nd base)")
    args = p.parse_args()
    smoke = args.size == "smoke"
    n_requests, max_tokens = (8, 8) if smoke else (16, 32)

    with tempfile.TemporaryDirectory(prefix="lorag-recipe6-") as tmp:
        dirs = make_adapters(Path(tmp), 4)
        names = list(dirs)
        plan = requests(n_requests, names)
        engine = LoragEngine(
            MODEL, quantization="nf4", device="cpu", adapters=dirs, max_batch_size=16, exact_batching=True
        )
        for name in names:
            engine.adapters.load(name)  # cold loads out of the timings
        engine.generate(PROMPTS[0], max_tokens=2)  # warm-up (bitsandbytes packs the 4-bit weights on first use)

        def ask(prompt: str, adapter: str | None) -> Any:
            return engine.generate(
                messages=[{"role": "user", "content": prompt}], adapter=adapter, max_tokens=max_tokens, temperature=0.0
            )

        results: dict[str, dict[str, Any]] = {}
        with Counters(engine) as c:
            solo = [ask(*r) for r in plan]
        results["sequential"] = summary([r.token_ids for r in solo], c, c.seconds)

        if not args.no_naive:
            naive_ids, seconds = naive(dirs, plan, max_tokens)
            results["naive lock"] = summary(naive_ids, None, seconds)

        with Counters(engine) as c, ThreadPoolExecutor(len(plan)) as pool:
            threaded = list(pool.map(lambda r: ask(*r), plan))
        results["threads"] = summary([r.token_ids for r in threaded], c, c.seconds)

        async def gather() -> list[Any]:
            return await asyncio.gather(
                *(
                    engine.agenerate(messages=[{"role": "user", "content": q}], adapter=a, max_tokens=max_tokens)
                    for q, a in plan
                )
            )

        with Counters(engine) as c:
            asynced = asyncio.run(gather())
        results["asyncio"] = summary([r.token_ids for r in asynced], c, c.seconds)
        engine.close()

    identical = [s.token_ids == t.token_ids == a.token_ids for s, t, a in zip(solo, threaded, asynced, strict=True)]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "throughput.png")
    for (q, a), r, same in zip(plan, solo, identical, strict=True):
        print(f"{a or 'base':>9} | {q[:40]:<40} | {r.text[:60]!r} | same as solo: {same}")
    base_speed = results["sequential"]["tokens_per_s"]
    first = [(r, out) for r, out in zip(plan, solo, strict=True) if r[0] == plan[0][0]]
    write_results(
        args.out,
        {
            "requests": n_requests,
            "max_tokens": max_tokens,
            "adapters": names,
            "torch_threads": torch.get_num_threads(),
            "modes": results,
            "speedup_vs_sequential": {m: round(r["tokens_per_s"] / base_speed, 2) for m, r in results.items()},
            "identical_to_solo": identical,
            "distinct_outputs_for_first_prompt": len({tuple(r.token_ids) for (q, _), r in first}),
            "outputs": [
                {"prompt": q, "adapter": a or "base", "text": r.text} for (q, a), r in zip(plan, solo, strict=True)
            ],
            "plot": "throughput.png",
        },
    )


if __name__ == "__main__":
    main()

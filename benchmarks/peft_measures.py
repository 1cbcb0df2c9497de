"""What ``peft_methods.py`` measures on a trained row, beyond training itself: held-out F1, decode overhead through the
lorag engine, and forgetting (perplexity on general text with the adapter on minus without).

General text: the bundled FastAPI docs (``examples/fastapi-docs``, MIT, in the repository so every run reads the same
bytes). They are English prose about web APIs, nothing like the SQuAD (Wikipedia) passages and extractive answers the
rows train on, so a rise in perplexity there is the adapter disturbing the base outside its task.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GENERAL_TEXT = REPO / "examples" / "fastapi-docs"


def general_text() -> str:
    """Every Markdown file of the bundled FastAPI docs, in sorted path order, joined by blank lines."""
    files = sorted(GENERAL_TEXT.rglob("*.md"))
    return "\n\n".join(p.read_text(encoding="utf-8") for p in files if p.name != "SOURCE.md")


def text_windows(tokenizer: Any, n_tokens: int, window: int) -> list[list[int]]:
    """The first ``n_tokens`` tokens of ``general_text`` cut into windows of ``window`` tokens."""
    ids = tokenizer(general_text(), add_special_tokens=False)["input_ids"][:n_tokens]
    return [ids[i : i + window] for i in range(0, len(ids) - window + 1, window)]


def load_base(base: str, settings: dict[str, Any]) -> Any:
    """The base as the row trained on it (full precision or nf4), frozen, in eval mode."""
    from lorag.training.config import QLoRAConfig
    from lorag.training.loading import load_frozen_model

    config = QLoRAConfig(**{k: v for k, v in settings.items() if k != "teacher"})
    return load_frozen_model(base, config).eval()


def attach(model: Any, output: Path, settings: dict[str, Any]) -> Any:
    """The trained row: the full fine-tuned model (loaded like the base), or ``model`` wrapped with the adapter."""
    if settings["method"] == "full":
        return load_base(str(output), settings)
    from peft import PeftModel

    import lorag.peft_bottleneck  # noqa: F401  # registers the bottleneck method

    return PeftModel.from_pretrained(model, str(output)).eval()


def perplexity(model: Any, windows: list[list[int]]) -> float:
    """exp(mean next-token NLL) over every window (each scored on its own, the first token unscored)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids in windows:
            x = torch.tensor([ids], device=model.device)
            loss = model(input_ids=x, labels=x).loss
            total, count = total + float(loss) * (len(ids) - 1), count + len(ids) - 1
    return math.exp(total / count)


def engines(base: str, output: Path, settings: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """(bare base engine, engine serving the row, the row's adapter name) on one thread: the adapter is chosen per
    request on the base engine; the full fine-tuned model is served as its own base; QLoRA on the nf4 base."""
    from lorag.llm import LoragEngine

    quant = "nf4" if settings["quantization"] == "nf4" else "none"
    if settings["method"] == "full":
        engine = LoragEngine(base, quantization=quant, num_threads=1)
        return engine, LoragEngine(str(output), quantization=quant, num_threads=1), None
    engine = LoragEngine(base, quantization=quant, num_threads=1, adapters={"row": str(output)})
    return engine, engine, "row"


def held_out_f1(engine: Any, adapter: str | None, records: list[dict[str, Any]]) -> float | None:
    """Mean token F1 of greedy answers (at most 32 tokens) against each record's last assistant turn (citations
    removed); all records submitted together, so they decode in shared batches."""
    if not records:
        return None
    from lorag.evaluation.answers import f1_score, strip_citations

    handles = [engine.submit(messages=r["messages"][:-1], adapter=adapter, max_tokens=32) for r in records]
    golds = [r["messages"][-1]["content"] for r in records]
    scores = [
        f1_score(strip_citations(h.result().text), strip_citations(g)) for h, g in zip(handles, golds, strict=True)
    ]
    return sum(scores) / len(scores)


def decode_ms(engine: Any, messages: list[Any], adapter: str | None, tokens: int) -> float:
    """Milliseconds per decoded token of one greedy request of exactly ``tokens`` tokens, prefill excluded (from the
    first streamed token to the last)."""
    stamps = [
        time.perf_counter()
        for delta in engine.stream(messages=messages, adapter=adapter, max_tokens=tokens, min_tokens=tokens)
        if delta.token_id is not None
    ]
    return 1000 * (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def decode_overhead(
    engine: Any, row_engine: Any, adapter: str | None, records: list[dict[str, Any]], tokens: int, rounds: int
) -> tuple[float, float]:
    """(bare base, with the row) ms/token, one request at a time, greedy, the same prompts: base and row
    interleaved per prompt, the best of ``rounds`` per prompt, then the mean over prompts."""
    prompts = [r["messages"][:-1] for r in records]
    best: dict[tuple[int, str], float] = {}
    for _ in range(rounds):
        for i, messages in enumerate(prompts):
            for label, eng, name in (("base", engine, None), ("row", row_engine, adapter)):
                ms = decode_ms(eng, messages, name, tokens)
                best[i, label] = min(ms, best.get((i, label), math.inf))
    mean = {label: sum(best[i, label] for i in range(len(prompts))) / len(prompts) for label in ("base", "row")}
    return mean["base"], mean["row"]

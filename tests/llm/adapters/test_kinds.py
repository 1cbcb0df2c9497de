"""IA3, bottleneck, prompt- and prefix-tuning adapters served per request beside LoRA on one base.

Each kind must compute what peft computes for it (the oracle: peft's own ``PeftModel`` forward, token by token), and
concurrent requests for different kinds must get exactly their solo outputs (log-probabilities bit for bit).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from lorag.llm import LoragEngine
from tests.llm.lora_helpers import OTHER_KINDS, make_kind_adapter

PROMPTS = ["The quick brown fox", "Paris is the capital of", "LoRA adapters add low-rank", "def hello(name):"]


@pytest.fixture()
def kinds_engine(tiny_llm_dir: Path, adapter_dirs, kind_dirs, llm_device: str):
    """The tiny base with LoRA a0, a1 and one adapter of every other kind registered (not yet loaded)."""
    adapters = {"a0": adapter_dirs["a0"], "a1": adapter_dirs["a1"], **kind_dirs}
    eng = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=adapters, exact_batching=True)
    yield eng
    eng.close()


def peft_greedy(
    base_dir: Path, adapter_dir: Path, ids: list[int], steps: int, stop_ids
) -> tuple[list[int], list[float]]:
    """Greedy tokens and their log-probabilities from peft's own model, re-running the whole sequence each step."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import lorag.peft_bottleneck  # noqa: F401  # registers the bottleneck peft type

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).eval()
    tokens: list[int] = []
    logprobs: list[float] = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + tokens])).logits[0, -1].float()
            token = int(logits.argmax())
            tokens.append(token)
            logprobs.append(float(logits.log_softmax(-1)[token]))
            if token in stop_ids:
                break
    return tokens, logprobs


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_each_kind_serves_what_peft_computes(kinds_engine: LoragEngine, tiny_llm_dir: Path, kind_dirs, kind) -> None:
    base_before = kinds_engine.generate(PROMPTS[0], max_tokens=8)
    served = kinds_engine.generate(PROMPTS[0], adapter=kind, max_tokens=8)
    assert kinds_engine.adapters.info(kind).kind == kind
    assert served.adapter == kind and served.adapter_version == kinds_engine.adapter_version(kind)
    assert served.token_ids != base_before.token_ids  # the adapter changes the output
    ids = kinds_engine.tokenizer(PROMPTS[0])["input_ids"]
    tokens, logprobs = peft_greedy(tiny_llm_dir, kind_dirs[kind], ids, 8, kinds_engine.scheduler.stop_ids)
    assert served.token_ids == tokens
    assert served.token_logprobs == pytest.approx(logprobs, abs=1e-5)
    # a request without adapter is unaffected by the resident adapter, alone or beside it
    assert kinds_engine.generate(PROMPTS[0], max_tokens=8).token_logprobs == base_before.token_logprobs
    handles = [kinds_engine.submit(PROMPTS[0], adapter=a, max_tokens=8) for a in (kind, None)]
    assert [h.result().token_logprobs for h in handles] == [served.token_logprobs, base_before.token_logprobs]


def test_virtual_token_kinds_decode_in_the_base_group(kinds_engine: LoragEngine) -> None:
    """Prompt- and prefix-tuning requests need only the base layers after prefill: one row group with the base."""
    names = ["prompt-tuning", "prefix-tuning", None, "prompt-tuning"]
    alone = [kinds_engine.generate(PROMPTS[0], adapter=a, max_tokens=6) for a in names]
    assert [kinds_engine.adapters.route(a or "__base__") for a in names] == ["__base__"] * 4
    assert kinds_engine.adapters.route("ia3") == "ia3"
    handles = [kinds_engine.submit(PROMPTS[0], adapter=a, max_tokens=6) for a in names]
    together = [h.result() for h in handles]
    assert kinds_engine.scheduler.max_rows_seen == 4  # the four requests decoded together
    assert [r.token_logprobs for r in together] == [r.token_logprobs for r in alone]


def test_eight_threads_mixed_kinds_equal_solo(kinds_engine: LoragEngine) -> None:
    names = ["a0", "ia3", "bottleneck", "prompt-tuning", "prefix-tuning", None, "a1", "ia3"]
    requests = [(PROMPTS[i % len(PROMPTS)], names[i]) for i in range(8)]
    alone = {key: kinds_engine.generate(key[0], adapter=key[1], max_tokens=10) for key in requests}
    assert len({tuple(r.token_ids) for r in alone.values()}) == len(alone)  # each request has its own answer
    results: list[tuple[tuple[str, str | None], object]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for round_ in range(3):
                key = requests[(i + round_) % 8]
                results.append((key, kinds_engine.generate(key[0], adapter=key[1], max_tokens=10)))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 24
    assert [key for key, r in results if r.token_logprobs != alone[key].token_logprobs] == []
    assert kinds_engine.scheduler.max_rows_seen >= 8


def test_kinds_exact_on_a_4bit_base(tiny_llm64_dir: Path, adapter64_dirs, tmp_path: Path, llm_device: str) -> None:
    kinds = {k: make_kind_adapter(tiny_llm64_dir, tmp_path / k, k, seed=400 + i) for i, k in enumerate(OTHER_KINDS)}
    engine = LoragEngine(
        tiny_llm64_dir, quantization="nf4", device=llm_device, adapters={**adapter64_dirs, **kinds}, exact_batching=True
    )
    names = ["b0", *OTHER_KINDS, None]
    alone = {a: engine.generate(PROMPTS[1], adapter=a, max_tokens=6) for a in names}
    assert len({tuple(r.token_ids) for r in alone.values()}) == len(names)
    handles = {a: engine.submit(PROMPTS[1], adapter=a, max_tokens=6) for a in names}
    assert {a: h.result().token_logprobs for a, h in handles.items()} == {a: r.token_logprobs for a, r in alone.items()}
    engine.close()


def test_reload_changes_kind_and_unload_restores_the_base(kinds_engine: LoragEngine, kind_dirs, adapter_dirs) -> None:
    base = kinds_engine.generate(PROMPTS[2], max_tokens=6).token_logprobs
    ia3 = kinds_engine.generate(PROMPTS[2], adapter="ia3", max_tokens=6)
    kinds_engine.adapters.reload("ia3", adapter_dirs["a1"])  # the same name, now a LoRA adapter
    assert kinds_engine.adapters.info("ia3").kind == "lora"
    assert kinds_engine.generate(PROMPTS[2], adapter="ia3", max_tokens=6).token_logprobs == (
        kinds_engine.generate(PROMPTS[2], adapter="a1", max_tokens=6).token_logprobs
    )
    kinds_engine.adapters.reload("ia3", kind_dirs["ia3"])
    assert kinds_engine.generate(PROMPTS[2], adapter="ia3", max_tokens=6).token_logprobs == ia3.token_logprobs
    for name in kinds_engine.adapters.resident():
        kinds_engine.adapters.unload(name)
    assert not kinds_engine.adapters.has_adapters
    assert kinds_engine.generate(PROMPTS[2], max_tokens=6).token_logprobs == base

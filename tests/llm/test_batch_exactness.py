"""Concurrent requests for different adapters share forward passes, yet each gets exactly its solo output.

Exactness (``exact_batching=True``, the ``engine`` fixture) is checked on the log-probabilities of the generated
tokens, bit for bit, not only on the tokens; the default batching is checked to within rounding.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

PROMPTS = [
    "The quick brown fox",
    "Paris is the capital of",
    "LoRA adapters add low-rank",
    "def hello(name):",
    "El zorro marrón salta",
    "Numbers like 3.14 and",
    "# Heading",
    "Dense retrieval embeds queries",
]
ADAPTERS = ["a0", "a1", "a2", "a3"]


def solo_runs(engine, requests, max_tokens: int = 10):
    return {(p, a): engine.generate(p, adapter=a, max_tokens=max_tokens) for p, a in requests}


def test_mixed_batch_equals_separate_runs(engine) -> None:
    requests = [(p, a) for p, a in zip(PROMPTS, [*ADAPTERS, None, *ADAPTERS[:3]], strict=True)]
    alone = solo_runs(engine, requests)
    handles = {key: engine.submit(key[0], adapter=key[1], max_tokens=10) for key in requests}
    together = {key: h.result() for key, h in handles.items()}
    assert engine.scheduler.max_rows_seen >= len(requests)  # they really shared forward passes
    for key in requests:
        assert together[key].token_ids == alone[key].token_ids, key
        assert together[key].token_logprobs == alone[key].token_logprobs, key


def test_eight_threads_four_adapters_no_crosstalk(engine) -> None:
    requests = [(PROMPTS[i], ADAPTERS[i % 4]) for i in range(8)]
    alone = solo_runs(engine, requests, max_tokens=12)
    assert len({tuple(r.token_ids) for r in alone.values()}) == 8  # every request has its own answer
    results: dict[tuple[int, int], object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for round_ in range(3):
                p, a = requests[(i + round_) % 8]
                results[(i, round_)] = (p, a, engine.generate(p, adapter=a, max_tokens=12))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 24
    crosstalk = [(p, a) for p, a, r in results.values() if r.token_logprobs != alone[(p, a)].token_logprobs]
    assert crosstalk == []
    assert engine.scheduler.max_rows_seen >= 8


async def test_asyncio_concurrency(engine) -> None:
    requests = [(PROMPTS[i], ADAPTERS[i % 4]) for i in range(8)]
    alone = solo_runs(engine, requests)
    results = await asyncio.gather(*(engine.agenerate(p, adapter=a, max_tokens=10) for p, a in requests))
    for (p, a), result in zip(requests, results, strict=True):
        assert result.token_logprobs == alone[(p, a)].token_logprobs

    async def collect(p: str, a: str) -> str:
        return "".join([d.text async for d in engine.astream(p, adapter=a, max_tokens=10)])

    texts = await asyncio.gather(*(collect(p, a) for p, a in requests))
    assert texts == [alone[key].text for key in requests]


def test_requests_join_a_running_batch(engine) -> None:
    """A request arriving while others decode joins between steps; everyone still gets the solo output."""
    long_key, short_keys = (PROMPTS[0], "a0"), [(PROMPTS[i], ADAPTERS[i % 4]) for i in range(1, 6)]
    alone = solo_runs(engine, [long_key], max_tokens=40) | solo_runs(engine, short_keys, max_tokens=6)
    long_handle = engine.submit(long_key[0], adapter=long_key[1], max_tokens=40)
    stream = iter(long_handle)
    next(stream)  # the long request is decoding now
    late = {key: engine.submit(key[0], adapter=key[1], max_tokens=6) for key in short_keys}
    for key, handle in late.items():
        assert handle.result().token_logprobs == alone[key].token_logprobs
    for _ in stream:
        pass
    assert long_handle.result_value.token_logprobs == alone[long_key].token_logprobs


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_mixed_batch_exact_on_quantized_base(
    tiny_llm64_dir, adapter64_dirs, quantization: str, llm_device: str
) -> None:
    from lorag.llm import LoragEngine

    engine = LoragEngine(
        tiny_llm64_dir, quantization=quantization, device=llm_device, adapters=adapter64_dirs, exact_batching=True
    )
    requests = [(PROMPTS[i], ["b0", "b1", None][i % 3]) for i in range(6)]
    alone = solo_runs(engine, requests, max_tokens=8)
    handles = {key: engine.submit(key[0], adapter=key[1], max_tokens=8) for key in requests}
    for key, handle in handles.items():
        assert handle.result().token_logprobs == alone[key].token_logprobs
    engine.close()


def test_4bit_base_outputs_survive_adapter_loads(tiny_llm64_dir, adapter64_dirs, llm_device: str) -> None:
    """bitsandbytes repacks CPU 4-bit weights lossily when state_dict() is called; loading adapters must not."""
    from lorag.llm import LoragEngine

    engine = LoragEngine(tiny_llm64_dir, quantization="nf4", device=llm_device, adapters=adapter64_dirs)
    base = engine.generate(PROMPTS[0], max_tokens=6).token_logprobs
    b0 = engine.generate(PROMPTS[0], adapter="b0", max_tokens=6).token_logprobs
    engine.adapters.load("b1")
    assert engine.generate(PROMPTS[0], adapter="b0", max_tokens=6).token_logprobs == b0
    engine.adapters.unload("b1")
    engine.adapters.unload("b0")
    assert engine.generate(PROMPTS[0], max_tokens=6).token_logprobs == base
    engine.close()


def test_loading_and_unloading_adapters_mid_generation(engine) -> None:
    """Hot-swapping other adapters between decode steps leaves in-flight requests untouched."""
    alone = solo_runs(engine, [(PROMPTS[0], "a0"), (PROMPTS[1], None)], max_tokens=30)
    engine.adapters.unload("a0")
    engine.adapters.load("a2")
    handles = {key: engine.submit(key[0], adapter=key[1], max_tokens=30) for key in alone}
    stream = iter(handles[(PROMPTS[0], "a0")])
    next(stream)  # decoding has started
    engine.adapters.load("a1")
    engine.adapters.unload("a2")
    engine.adapters.load("a3")
    for _ in stream:
        pass
    for key, handle in handles.items():
        assert handle.result().token_logprobs == alone[key].token_logprobs, key


def test_row_groups_are_runs_of_one_adapter() -> None:
    from lorag.llm.adapters.row_groups import row_groups

    names = ["a", "a", "a", "a", "__base__", "b", "b", "b", "b", "a"]
    assert row_groups(names) == (("a", 0, 4), ("__base__", 4, 5), ("b", 5, 9), ("a", 9, 10))
    assert row_groups([]) == ()


def test_default_batching_gives_each_request_its_own_adapter(tiny_llm_dir, adapter_dirs, llm_device: str) -> None:
    """Without exactness, rows share one product per weight: each still gets its own adapter, equal to its solo
    run up to float rounding (the rows' logits differ in the last bits at most)."""
    from lorag.llm import LoragEngine

    engine = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=adapter_dirs)
    assert engine.scheduler.exact is False
    requests = [(PROMPTS[i], [*ADAPTERS, None][i % 5]) for i in range(8)]
    alone = solo_runs(engine, requests, max_tokens=4)
    handles = {key: engine.submit(key[0], adapter=key[1], max_tokens=4) for key in requests}
    together = {key: h.result() for key, h in handles.items()}
    assert engine.scheduler.max_rows_seen == len(requests)
    assert len({tuple(alone[key].token_logprobs) for key in requests}) == len(requests)  # each pair its own output
    for key in requests:
        assert together[key].token_ids == alone[key].token_ids, key
        assert together[key].token_logprobs == pytest.approx(alone[key].token_logprobs, abs=1e-4), key
    engine.close()

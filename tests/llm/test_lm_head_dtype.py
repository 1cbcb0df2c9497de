"""``lm_head_dtype``: the output layer from a bfloat16 or int8 copy keeps adapters, exact batching and the identity
of the base (cache keys) working, and a bad value is a clear error."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

PROMPTS = ["The quick brown fox", "Paris is the capital of", "def hello(name):", "# Heading", "Numbers like 3.14"]
ADAPTERS = ["a0", "a1", None, "a3", "a0"]


@pytest.fixture(params=["bfloat16", "int8"])
def low_head_engine(request, tiny_llm_dir: Path, adapter_dirs: dict[str, Path], llm_device: str):
    from lorag.llm import LoragEngine

    if request.param == "int8" and llm_device != "cpu":
        pytest.skip("the int8 output layer is CPU only")
    eng = LoragEngine(
        tiny_llm_dir,
        quantization="none",
        device=llm_device,
        adapters=adapter_dirs,
        lm_head_dtype=request.param,
        exact_batching=True,
    )
    yield eng
    eng.close()


def test_lower_head_keeps_the_embedding_and_changes_the_identity(low_head_engine, engine) -> None:
    import torch

    model = low_head_engine.base.model
    dtype = low_head_engine.base.settings.lm_head_dtype
    assert type(model.get_output_embeddings()).__name__ == "LowPrecisionHead"
    assert model.get_input_embeddings().weight.dtype == torch.float32  # the lookup stays exact
    assert model.get_input_embeddings().weight.data_ptr() != model.get_output_embeddings().stored_weight.data_ptr()
    assert low_head_engine.base.settings.as_dict()["lm_head_dtype"] == dtype
    assert "lm_head_dtype" not in engine.base.settings.as_dict()  # the default's versions predate the option
    assert low_head_engine.adapter_version(None) != engine.adapter_version(None)


def test_lower_head_output_is_finite_and_close(low_head_engine, engine) -> None:
    for adapter in (None, "a0"):
        low = low_head_engine.generate(PROMPTS[1], adapter=adapter, max_tokens=6)
        full = engine.generate(PROMPTS[1], adapter=adapter, max_tokens=6)
        assert low.usage.completion_tokens == 6
        assert all(math.isfinite(x) for x in low.token_logprobs)
        assert low.token_ids[0] == full.token_ids[0]
        assert abs(low.token_logprobs[0] - full.token_logprobs[0]) < 0.05


def test_lower_head_mixed_batch_equals_solo_runs(low_head_engine) -> None:
    requests = list(zip(PROMPTS, ADAPTERS, strict=True))
    alone = {key: low_head_engine.generate(key[0], adapter=key[1], max_tokens=8) for key in requests}
    handles = {key: low_head_engine.submit(key[0], adapter=key[1], max_tokens=8) for key in requests}
    together = {key: handle.result() for key, handle in handles.items()}
    assert low_head_engine.scheduler.max_rows_seen >= len(requests)  # they shared forward passes
    for key in requests:
        assert together[key].token_ids == alone[key].token_ids, key
        assert together[key].token_logprobs == alone[key].token_logprobs, key


def test_lower_head_on_a_4bit_base(tiny_llm64_dir: Path, adapter64_dirs: dict[str, Path]) -> None:
    from lorag.llm import LoragEngine

    eng = LoragEngine(
        tiny_llm64_dir,
        quantization="nf4",
        device="cpu",
        adapters=adapter64_dirs,
        lm_head_dtype="int8",
        exact_batching=True,
    )
    try:
        alone = {a: eng.generate(PROMPTS[0], adapter=a, max_tokens=6) for a in ("b0", "b1", None)}
        handles = {a: eng.submit(PROMPTS[0], adapter=a, max_tokens=6) for a in alone}
        for adapter, handle in handles.items():
            assert handle.result().token_logprobs == alone[adapter].token_logprobs, adapter
        assert alone["b0"].token_logprobs != alone[None].token_logprobs  # the adapter is applied
    finally:
        eng.close()


def test_bad_lm_head_dtype_is_a_clear_error(tiny_llm_dir: Path) -> None:
    from lorag.llm import LoragEngine, load_base

    with pytest.raises(ValueError, match=r"lm_head_dtype 'float8'.*bfloat16, int8"):
        LoragEngine(tiny_llm_dir, quantization="none", device="cpu", lm_head_dtype="float8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lm_head_dtype"):
        load_base(tiny_llm_dir, quantization="none", device="cpu", lm_head_dtype="fp16")  # type: ignore[arg-type]

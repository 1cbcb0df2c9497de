"""Every bad input gets a clear error and leaves the registry and the base model exactly as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lorag.llm import AdapterError, BaseMismatchWarning, LoragEngine, UnknownAdapterError
from tests.llm.lora_helpers import assert_unchanged, make_adapter, snapshot, write_metadata
from tiny_models import widen_tiny_llm


@pytest.fixture()
def loaded(engine):
    """The engine with a0 resident, so failures are checked against a live peft model too."""
    engine.adapters.load("a0")
    reference = engine.generate("The quick brown fox", adapter="a0", max_tokens=8)
    return engine, reference


def test_missing_adapter_dir(loaded, tmp_path: Path) -> None:
    engine, reference = loaded
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="does not exist"):
        engine.adapters.register("ghost", tmp_path / "nope")
    assert_unchanged(engine, before, reference)


def test_adapter_for_another_base_shape_mismatch(loaded, tiny_llm_dir: Path, tmp_path: Path) -> None:
    engine, reference = loaded
    other_base = widen_tiny_llm(tiny_llm_dir, tmp_path / "wide", hidden=64)
    foreign = make_adapter(other_base, tmp_path / "foreign", seed=7)
    engine.adapters.register("foreign", foreign)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="shape mismatch"):
        engine.generate("hi", adapter="foreign", max_tokens=4)
    assert_unchanged(engine, before, reference)


def test_adapter_targeting_missing_modules(loaded, adapter_dirs, tmp_path: Path) -> None:
    engine, reference = loaded
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "gpt2ish"
    shutil.copytree(adapter_dirs["a0"], bad)
    weights = load_file(bad / "adapter_model.safetensors")
    renamed = {k.replace("self_attn.q_proj", "attn.c_attn"): v for k, v in weights.items()}
    save_file(renamed, bad / "adapter_model.safetensors")
    engine.adapters.register("gpt2ish", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="lacks"):
        engine.adapters.load("gpt2ish")
    assert_unchanged(engine, before, reference)


def test_corrupted_safetensors(loaded, adapter_dirs, tmp_path: Path) -> None:
    engine, reference = loaded
    bad = tmp_path / "corrupt"
    shutil.copytree(adapter_dirs["a1"], bad)
    data = (bad / "adapter_model.safetensors").read_bytes()
    (bad / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    engine.adapters.register("corrupt", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="corrupted"):
        engine.adapters.load("corrupt")
    assert_unchanged(engine, before, reference)


def test_pickle_adapter_refused_unless_allowed(loaded, adapter_dirs, tmp_path: Path) -> None:
    engine, reference = loaded
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(adapter_dirs["a1"] / "adapter_config.json", pickled)
    torch.save(load_file(adapter_dirs["a1"] / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="pickle"):
        engine.adapters.register("pickled", pickled)
    assert_unchanged(engine, before, reference)
    engine.adapters.register("pickled", pickled, allow_pickle=True)
    expected = engine.generate("The quick brown fox", adapter="a1", max_tokens=8)
    assert engine.generate("The quick brown fox", adapter="pickled", max_tokens=8).token_ids == expected.token_ids


def test_unknown_adapter_in_request(loaded) -> None:
    engine, reference = loaded
    before = snapshot(engine)
    with pytest.raises(UnknownAdapterError, match=r"unknown adapter 'legal'.*a0"):
        engine.generate("hi", adapter="legal", max_tokens=4)
    assert_unchanged(engine, before, reference)


@pytest.mark.parametrize("max_tokens", [0, -3])
def test_max_tokens_must_be_positive(loaded, max_tokens: int) -> None:
    engine, reference = loaded
    before = snapshot(engine)
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 1"):
        engine.generate("hi", adapter="a0", max_tokens=max_tokens)
    assert_unchanged(engine, before, reference)


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt(loaded, prompt: str) -> None:
    engine, reference = loaded
    before = snapshot(engine)
    with pytest.raises(ValueError, match="prompt is empty"):
        engine.generate(prompt, adapter="a0", max_tokens=4)
    with pytest.raises(ValueError, match="messages is empty"):
        engine.generate(messages=[], adapter="a0", max_tokens=4)
    assert_unchanged(engine, before, reference)


def test_recorded_base_fingerprint_warns_or_refuses(tiny_llm_dir: Path, adapter_dirs, tmp_path: Path) -> None:
    marked = tmp_path / "marked"
    shutil.copytree(adapter_dirs["a2"], marked)
    write_metadata(marked, "0123456789abcdef")
    strict = LoragEngine(tiny_llm_dir, quantization="none", device="cpu", on_base_mismatch="error")
    strict.adapters.register("marked", marked)
    before = snapshot(strict)
    with pytest.raises(AdapterError, match="fingerprint 0123456789abcdef"):
        strict.adapters.load("marked")
    assert snapshot(strict) == before
    write_metadata(marked, strict.base.fingerprint)  # the trainer's record of this very base: loads silently
    strict.adapters.load("marked")
    strict.close()
    lenient = LoragEngine(tiny_llm_dir, quantization="none", device="cpu")
    write_metadata(marked, "0123456789abcdef")
    lenient.adapters.register("marked", marked)
    with pytest.warns(BaseMismatchWarning, match="fingerprint"):
        lenient.adapters.load("marked")
    lenient.close()


def test_recorded_base_name_mismatch_warns(engine, adapter_dirs, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(adapter_dirs["a2"], renamed)
    config = json.loads((renamed / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-3-70B"
    (renamed / "adapter_config.json").write_text(json.dumps(config))
    engine.adapters.register("renamed", renamed)
    with pytest.warns(BaseMismatchWarning, match="Llama-3-70B"):
        engine.adapters.load("renamed")


def test_reserved_and_duplicate_names(engine, adapter_dirs) -> None:
    with pytest.raises(AdapterError, match="reserved"):
        engine.adapters.register("__base__", adapter_dirs["a0"])
    with pytest.raises(AdapterError, match=r"'half' is taken by torch\.nn\.Module"):
        engine.adapters.register("half", adapter_dirs["a0"])  # peft would fail deep inside a ModuleDict
    with pytest.raises(AdapterError, match="already registered"):
        engine.adapters.register("a0", adapter_dirs["a1"])
    engine.adapters.register("a0", adapter_dirs["a0"])  # same path: a no-op


@pytest.mark.parametrize("dropped", ["lora_A", "lora_B"])
def test_adapter_missing_half_of_a_layer_is_refused(loaded, adapter_dirs, tmp_path: Path, dropped: str) -> None:
    """a1 targets a0's modules, so it is added straight to a0's LoRA layers; one matrix missing is still refused."""
    engine, reference = loaded
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "partial"
    shutil.copytree(adapter_dirs["a1"], bad)
    weights = load_file(bad / "adapter_model.safetensors")
    victim = next(k for k in sorted(weights) if f"o_proj.{dropped}" in k)
    save_file({k: v for k, v in weights.items() if k != victim}, bad / "adapter_model.safetensors")
    engine.adapters.register("partial", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="no weights for 1 LoRA layers"):
        engine.adapters.load("partial")
    assert_unchanged(engine, before, reference)

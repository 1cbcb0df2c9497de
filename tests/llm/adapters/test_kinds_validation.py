"""Bad adapters of every kind are refused with a clear error, leaving the registry and the base as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lorag.llm import AdapterError, LoragEngine, SamplingParams
from tests.llm.lora_helpers import OTHER_KINDS, assert_unchanged, make_kind_adapter, snapshot
from tiny_models import widen_tiny_llm


@pytest.fixture(scope="module")
def wide_kind_dirs(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One adapter of each kind trained for a base with hidden size 64 (the tiny base has 32)."""
    root = tmp_path_factory.mktemp("wide-kinds")
    wide = widen_tiny_llm(tiny_llm_dir, root / "base", hidden=64)
    return {kind: make_kind_adapter(wide, root / kind, kind, seed=500 + i) for i, kind in enumerate(OTHER_KINDS)}


@pytest.fixture()
def loaded(engine: LoragEngine, kind_dirs):
    """The engine with LoRA a0 and an IA3 adapter resident, so failures are checked against live hooks too."""
    engine.adapters.register("ia3", kind_dirs["ia3"], load=True)
    reference = engine.generate("The quick brown fox", adapter="a0", max_tokens=8)
    return engine, reference


MESSAGES = {
    "prompt-tuning": "prompt-tuning adapter for a base with hidden size 64; the base .* has hidden size 32",
    "prefix-tuning": r"prefix-tuning adapter for a base with \(layers, key/value heads, head size\) \(2, 2, 16\)",
    "ia3": "shape mismatch",
    "bottleneck": "shape mismatch",
}


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_adapter_for_another_hidden_size(loaded, wide_kind_dirs, kind: str) -> None:
    engine, reference = loaded
    engine.adapters.register("wide", wide_kind_dirs[kind])
    before = snapshot(engine)
    with pytest.raises(AdapterError, match=MESSAGES[kind]) as err:
        engine.generate("hi", adapter="wide", max_tokens=4)
    assert str(wide_kind_dirs[kind]) in str(err.value)  # names the directory
    assert_unchanged(engine, before, reference)


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_pickle_only_adapter_refused(loaded, kind_dirs, tmp_path: Path, kind: str) -> None:
    from safetensors.torch import load_file

    engine, reference = loaded
    bad = tmp_path / "pickled"
    shutil.copytree(kind_dirs[kind], bad)
    torch.save(load_file(bad / "adapter_model.safetensors"), bad / "adapter_model.bin")
    (bad / "adapter_model.safetensors").unlink()
    before = snapshot(engine)
    with pytest.raises(AdapterError, match=r"pickle adapter_model\.bin, refused because unpickling can run code"):
        engine.adapters.register("pickled", bad)
    assert_unchanged(engine, before, reference)


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_nan_weights_refused(loaded, kind_dirs, tmp_path: Path, kind: str) -> None:
    from safetensors.torch import load_file, save_file

    engine, reference = loaded
    bad = tmp_path / "nan"
    shutil.copytree(kind_dirs[kind], bad)
    weights = load_file(bad / "adapter_model.safetensors")
    victim = sorted(weights)[0]
    weights[victim] = weights[victim].clone()
    weights[victim].view(-1)[0] = float("nan")
    save_file(weights, bad / "adapter_model.safetensors")
    engine.adapters.register("nan", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match=f"NaN or infinite values in 1 tensor.*{victim}"):
        engine.adapters.load("nan")
    assert_unchanged(engine, before, reference)


def test_unserved_kind_names_the_served_ones(loaded, kind_dirs, tmp_path: Path) -> None:
    engine, reference = loaded
    bad = tmp_path / "loha"
    shutil.copytree(kind_dirs["ia3"], bad)
    config = json.loads((bad / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "LOHA"}))
    engine.adapters.register("loha", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="LOHA adapter; lorag serves lora, ia3, bottleneck, prompt-tuning"):
        engine.adapters.load("loha")
    assert_unchanged(engine, before, reference)


def test_incomplete_bottleneck_refused(loaded, kind_dirs, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    engine, reference = loaded
    bad = tmp_path / "partial"
    shutil.copytree(kind_dirs["bottleneck"], bad)
    weights = load_file(bad / "adapter_model.safetensors")
    victim = next(k for k in sorted(weights) if k.endswith("bottleneck_up.weight"))
    save_file({k: v for k, v in weights.items() if k != victim}, bad / "adapter_model.safetensors")
    engine.adapters.register("partial", bad)
    before = snapshot(engine)
    with pytest.raises(AdapterError, match=r"no weights for 1 bottleneck layers .*no bottleneck_up\.weight"):
        engine.adapters.load("partial")
    assert_unchanged(engine, before, reference)


def test_compositions_take_lora_sources_only(loaded, kind_dirs) -> None:
    engine, reference = loaded
    before = snapshot(engine)
    with pytest.raises(AdapterError, match="compositions combine LoRA adapters"):
        engine.adapters.compose("mix", {"a0": 0.5, "ia3": 0.5})
    assert_unchanged(engine, before, reference)
    engine.adapters.unload("ia3")  # not resident: its kind is known from its last load
    with pytest.raises(AdapterError, match="compositions combine LoRA adapters"):
        engine.adapters.compose("mix", {"a0": 0.5, "ia3": 0.5})
    engine.adapters.register("fresh", kind_dirs["bottleneck"])  # never loaded: refused once loading shows its kind
    with pytest.raises(AdapterError, match="compositions combine LoRA adapters"):
        engine.adapters.compose("mix", {"a0": 0.5, "fresh": 0.5})
    assert "mix" not in engine.adapters.names()


def test_virtual_tokens_count_against_the_context(engine: LoragEngine, kind_dirs) -> None:
    engine.adapters.register("pt", kind_dirs["prompt-tuning"])
    ids = engine.tokenizer("hello " * 1000)["input_ids"][: engine.context_window - 2]
    assert len(ids) == 510
    engine.scheduler.submit(ids, None, SamplingParams(max_tokens=1)).result()  # fits without the virtual tokens
    with pytest.raises(ValueError, match="after 4 virtual tokens of 'pt'; the model's context is 512"):
        engine.scheduler.submit(ids, "pt", SamplingParams(max_tokens=1))
    engine.adapters.unload("pt")  # the refused request released the adapter (a busy one cannot be unloaded)

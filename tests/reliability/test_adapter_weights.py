"""Adapters that would load and then answer nothing: NaN or infinite weights, and names that collide with peft's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lorag.llm import AdapterError, LoragEngine  # noqa: E402

PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def adapter(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA adapter on every attention and MLP projection of the tiny base, saved with peft."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter") / "good"
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine(tiny_llm_dir: Path, adapter: Path):
    torch.set_num_threads(1)
    eng = LoragEngine(tiny_llm_dir, quantization="none", device="cpu", adapters={"good": adapter})
    yield eng
    eng.close()


def _damaged(adapter: Path, out: Path, value: float, count: int = 1) -> tuple[Path, list[str]]:
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, out)
    weights = load_file(out / "adapter_model.safetensors")
    keys = sorted(weights)[:count]
    for key in keys:
        weights[key][0, 0] = value
    save_file(weights, out / "adapter_model.safetensors")
    return out, keys


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_file_and_tensor(
    engine: LoragEngine, adapter: Path, tmp_path: Path, value: float
) -> None:
    reference = engine.generate(PROMPT, adapter="good", max_tokens=6).token_ids
    bad, (key,) = _damaged(adapter, tmp_path / "bad", value)
    engine.adapters.register("bad", bad)
    with pytest.raises(AdapterError, match="NaN or infinite") as err:
        engine.generate(PROMPT, adapter="bad", max_tokens=6)
    assert str(bad / "adapter_model.safetensors") in str(err.value)
    assert key in str(err.value)
    assert "bad" not in engine.adapters.resident()
    assert engine.generate(PROMPT, adapter="good", max_tokens=6).token_ids == reference
    engine.adapters.remove("bad")


def test_many_bad_tensors_are_counted_and_a_few_named(engine: LoragEngine, adapter: Path, tmp_path: Path) -> None:
    bad, keys = _damaged(adapter, tmp_path / "bad", float("nan"), count=5)
    with pytest.raises(AdapterError, match=r"in 5 tensor\(s\): .* and 2 more") as err:
        engine.adapters.register("bad", bad, load=True)
    assert keys[0] in str(err.value)
    assert "bad" not in engine.adapters.names()


@pytest.mark.parametrize("name", ["lora_A", "lora_B", "lora_embedding_A", "scaling", "base_layer"])
def test_a_name_that_is_a_lora_attribute_is_refused_with_that_reason(
    engine: LoragEngine, adapter: Path, name: str
) -> None:
    with pytest.raises(AdapterError, match=rf"{name!r} is the name of a LoRA layer attribute in peft"):
        engine.adapters.register(name, adapter)
    assert name not in engine.adapters.names()
    engine.adapters.register("lora_A_v2", adapter)  # a name that only starts like one is fine
    assert engine.generate(PROMPT, adapter="lora_A_v2", max_tokens=4).token_ids
    engine.adapters.remove("lora_A_v2")

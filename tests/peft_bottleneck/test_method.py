"""The bottleneck peft method: placement, identity start, peft save/load as safetensors, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftConfig, PeftModel, PeftType, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from lorag.peft_bottleneck import PEFT_TYPE_NAME, BottleneckConfig

IDS = torch.tensor([[5, 17, 42, 99, 7]])


def wrapped(model: torch.nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "bottleneck_down")}


@pytest.mark.parametrize(("placement", "expected"), [("houlsby", {"o_proj", "down_proj"}), ("pfeiffer", {"down_proj"})])
def test_placement_picks_the_sublayer_outputs(tiny_llm_dir: Path, placement: str, expected: set[str]) -> None:
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), BottleneckConfig(placement=placement))
    assert wrapped(model) == expected
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".bottleneck_" in n for n in trainable)


def test_new_adapter_is_the_identity_and_width_follows_the_reduction_factor(tiny_llm_dir: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    with torch.no_grad():
        before = base(IDS).logits.clone()
    model = get_peft_model(base, BottleneckConfig(reduction_factor=8)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, before, rtol=0, atol=0)
    down = next(m for n, m in model.named_modules() if n.endswith("o_proj")).bottleneck_down["default"]
    assert (down.in_features, down.out_features) == (32, 4)


def test_save_and_reload_through_peft(tiny_llm_dir: Path, tmp_path: Path) -> None:
    config = BottleneckConfig(task_type="CAUSAL_LM", reduction_factor=4, init_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), config).eval()
    with torch.no_grad():
        tuned = model(IDS).logits.clone()
    model.save_pretrained(tmp_path / "adapter")

    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == PEFT_TYPE_NAME and saved["reduction_factor"] == 4
    assert sorted(saved["target_modules"]) == ["down_proj", "o_proj"]
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert len(weights) == 2 * 2 * 4  # 2 layers x 2 sites x (down, up) x (weight, bias)
    assert not any(p.suffix == ".bin" for p in (tmp_path / "adapter").iterdir())
    assert PeftConfig.from_pretrained(tmp_path / "adapter").peft_type == PeftType(PEFT_TYPE_NAME)

    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    with torch.no_grad():
        bare = base(IDS).logits.clone()
        reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
        torch.testing.assert_close(reloaded(IDS).logits, tuned)
        assert (tuned - bare).abs().max() > 1e-3
        with reloaded.disable_adapter():
            torch.testing.assert_close(reloaded(IDS).logits, bare)


def test_refusals_name_the_problem(tiny_llm_dir: Path) -> None:
    with pytest.raises(ValueError, match="houlsby, pfeiffer"):
        BottleneckConfig(placement="parallel")
    with pytest.raises(ValueError, match="reduction_factor"):
        BottleneckConfig(reduction_factor=0)
    with pytest.raises(ValueError, match="at most 32"):
        get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), BottleneckConfig(reduction_factor=64))
    with pytest.raises(ValueError, match="give target_modules"):
        BottleneckConfig().targets_for("gpt2")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), BottleneckConfig())
    with pytest.raises(NotImplementedError, match="cannot be merged"):
        model.merge_and_unload()

"""Adapters change outputs per request; switching back and forth is exact; outputs match peft's own reference."""

from __future__ import annotations

from pathlib import Path

PROMPTS = ["The quick brown fox", "Paris is the capital", "LoRA adapters add"]


def test_two_adapters_differ_and_switching_back_is_exact(engine) -> None:
    first = {p: engine.generate(p, adapter="a0", max_tokens=16) for p in PROMPTS}
    second = {p: engine.generate(p, adapter="a1", max_tokens=16) for p in PROMPTS}
    base = {p: engine.generate(p, max_tokens=16) for p in PROMPTS}
    assert all(first[p].token_ids != second[p].token_ids for p in PROMPTS)
    assert all(first[p].token_ids != base[p].token_ids for p in PROMPTS)
    again = {p: engine.generate(p, adapter="a0", max_tokens=16) for p in PROMPTS}
    for p in PROMPTS:
        assert again[p].token_ids == first[p].token_ids
        assert again[p].token_logprobs == first[p].token_logprobs  # bit for bit
        assert again[p].adapter_version == first[p].adapter_version
    base_again = engine.generate(PROMPTS[0], adapter="__base__", max_tokens=16)
    assert base_again.token_logprobs == base[PROMPTS[0]].token_logprobs


def test_outputs_match_peft_reference(engine, tiny_llm_dir: Path, adapter_dirs: dict[str, Path]) -> None:
    """Greedy tokens equal those of a plain peft PeftModel + transformers generate with the same adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_model = engine.base.model
    plain = AutoModelForCausalLM.from_pretrained(tiny_llm_dir, dtype=base_model.dtype).to(base_model.device)
    reference = PeftModel.from_pretrained(plain, adapter_dirs["a1"])
    reference.eval()
    tokenizer = engine.tokenizer
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").to(base_model.device)
        with torch.no_grad():
            out = reference.generate(**ids, max_new_tokens=12, do_sample=False, eos_token_id=None)
        expected = out[0, ids["input_ids"].shape[1] :].tolist()
        got = engine.generate(prompt, adapter="a1", max_tokens=12).token_ids
        assert got == expected[: len(got)] and len(got) >= 1


def test_base_rows_are_untouched_by_loaded_adapters(tiny_llm_dir: Path, adapter_dirs, llm_device: str) -> None:
    from lorag.llm import LoragEngine

    plain = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device)
    expected = plain.generate(PROMPTS[1], max_tokens=12)
    plain.adapters.register("a2", adapter_dirs["a2"], load=True)
    assert plain.generate(PROMPTS[1], max_tokens=12).token_logprobs == expected.token_logprobs
    plain.adapters.unload("a2")
    assert plain.adapters.model is plain.base.model
    assert plain.generate(PROMPTS[1], max_tokens=12).token_logprobs == expected.token_logprobs
    plain.close()


def test_adapter_added_to_existing_lora_layers_equals_peft_add_adapter(
    tiny_llm_dir: Path, adapter_dirs: dict[str, Path], tmp_path: Path, monkeypatch, llm_device: str
) -> None:
    """With a0 resident, a1 (same targets) is added straight to a0's LoRA layers; a3 (attention only) goes through
    peft's add_adapter; a rank-8 copy of a1's targets takes the direct path with its own rank. Each generates exactly
    what it generates when loaded alone (through peft's PeftModel)."""
    from lorag.llm import LoragEngine
    from lorag.llm.adapters.injection import LoraLayers
    from tests.llm.lora_helpers import make_adapter

    direct: list[str] = []
    add_direct = LoraLayers._add_to_existing_layers

    def spy(self, name, validated):  # type: ignore[no-untyped-def]
        direct.append(name)
        return add_direct(self, name, validated)

    monkeypatch.setattr(LoraLayers, "_add_to_existing_layers", spy)
    dirs = {**adapter_dirs, "r8": make_adapter(tiny_llm_dir, tmp_path / "r8", seed=7, r=8)}
    alone = {}
    for name in ("a1", "a3", "r8"):
        eng = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters={name: dirs[name]})
        alone[name] = [eng.generate(p, adapter=name, max_tokens=10).token_logprobs for p in PROMPTS]
        eng.close()
    shared = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=dirs)
    shared.adapters.load("a0")
    for name in ("a1", "a3", "r8"):
        shared.adapters.load(name)
        got = [shared.generate(p, adapter=name, max_tokens=10).token_logprobs for p in PROMPTS]
        assert got == alone[name], name
    assert shared.adapters.info("r8").rank == 8
    assert direct == ["a1", "r8"]
    shared.close()

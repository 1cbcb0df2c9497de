"""The saved adapter is a plain peft adapter that changes the base model's output."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorag.training.qlora import QLoRAConfig, train_adapter


def test_saved_adapter_changes_the_output(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    config = QLoRAConfig(quantization="none", max_steps=8, learning_rate=1e-2, batch_size=8, eval_fraction=0.0)
    train_adapter(tiny_llm_dir, echo_jsonl, out, config, show_progress=False)

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "word fox"}], tokenize=False, add_generation_prompt=True
    )
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    with torch.no_grad():
        before = base(**enc).logits[0, -1].clone()
        tuned = PeftModel.from_pretrained(base, str(out)).eval()
        after = tuned(**enc).logits[0, -1]
        with tuned.disable_adapter():
            disabled = tuned(**enc).logits[0, -1]
    torch.testing.assert_close(disabled, before)
    assert (after - before).abs().max() > 1e-2
    # trained towards the task: the answer's first token became more likely
    target = tokenizer("dog", add_special_tokens=False)["input_ids"][0]
    assert after.log_softmax(-1)[target] > before.log_softmax(-1)[target]

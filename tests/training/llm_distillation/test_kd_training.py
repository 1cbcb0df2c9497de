"""Training with a teacher: the student moves towards the teacher's distributions, with any method, and the run
records the teacher, alpha and temperature."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorag.losses import LLMDistillationLoss
from lorag.training.qlora import QLoRAConfig, train_adapter
from lorag.training.sft_data import SFTCollator, read_sft_jsonl, tokenize_records


def kl_to_teacher(student: torch.nn.Module, teacher: torch.nn.Module, data: Path, tokenizer: object) -> float:
    examples, _ = tokenize_records(tokenizer, read_sft_jsonl(data), max_length=64)
    batch = SFTCollator(0)([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    with torch.no_grad():
        s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return LLMDistillationLoss(0.0, 1.0).compute_components(s, t, batch["labels"])["kl"].item()


def test_soft_targets_pull_the_student_towards_the_teacher(
    tiny_llm_dir: Path, teacher_dir: Path, echo_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "student"
    config = QLoRAConfig(
        quantization="none", teacher=str(teacher_dir), kd_alpha=0.0, kd_temperature=1.0, max_steps=12,
        learning_rate=1e-2, batch_size=8, eval_fraction=0.0, warmup_ratio=0.0, lr_scheduler="constant", seed=0,
    )  # fmt: skip
    result = train_adapter(tiny_llm_dir, echo_data, out, config, show_progress=False)

    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert sum(losses[-3:]) < 0.9 * sum(losses[:3]), losses
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    before = kl_to_teacher(base, teacher, echo_data, tokenizer)
    after = kl_to_teacher(PeftModel.from_pretrained(base, str(out)).eval(), teacher, echo_data, tokenizer)
    assert after < 0.8 * before, (before, after)

    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["distillation"]["teacher"] == str(teacher_dir)
    assert meta["distillation"]["alpha"] == 0.0 and meta["distillation"]["temperature"] == 1.0
    assert meta["distillation"]["teacher_fingerprint"]
    assert meta["hyperparameters"]["teacher"] == str(teacher_dir)


def test_prompt_tuned_student_learns_from_a_teacher_with_an_adapter(
    tiny_llm_dir: Path, teacher_dir: Path, echo_data: Path, tmp_path: Path
) -> None:
    teacher_adapter = tmp_path / "teacher-adapter"
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(teacher_dir), lora).save_pretrained(teacher_adapter)

    config = QLoRAConfig(
        method="prompt-tuning", quantization="none", num_virtual_tokens=4, teacher=str(teacher_dir),
        teacher_adapter=str(teacher_adapter), kd_alpha=0.3, kd_temperature=2.0, max_steps=6, learning_rate=5e-2,
        batch_size=8, eval_fraction=0.25, eval_steps=3, warmup_ratio=0.0, lr_scheduler="constant", seed=0,
    )  # fmt: skip
    result = train_adapter(tiny_llm_dir, echo_data, tmp_path / "student", config, show_progress=False)

    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    assert result.final_eval_loss is not None
    assert result.metadata["distillation"]["teacher_adapter"] == str(teacher_adapter)
    assert result.metadata["distillation"]["teacher_adapter_fingerprint"]
    assert json.loads((tmp_path / "student" / "adapter_config.json").read_text())["peft_type"] == "PROMPT_TUNING"

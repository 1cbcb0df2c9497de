"""A 4-bit run on the tiny model: the loss falls, and the output dir holds exactly the promised files."""

from __future__ import annotations

import json
from pathlib import Path

from lorag.fingerprint import directory_fingerprint, file_sha256
from lorag.training.qlora import QLoRAConfig, train_adapter


def test_nf4_loss_falls_and_output_is_a_peft_adapter(tiny_llm_nf4_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    config = QLoRAConfig(max_steps=30, learning_rate=5e-3, batch_size=8, eval_fraction=0.2, eval_steps=10, seed=0)
    result = train_adapter(tiny_llm_nf4_dir, echo_jsonl, out, config, show_progress=False)

    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5
    evals = [row["eval_loss"] for row in result.metadata["log_history"] if "eval_loss" in row]
    assert evals[-1] < evals[0]

    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "training_metadata.json", "loss_curve.png"} <= names
    assert not any(p.suffix in {".bin", ".pt", ".pth", ".pkl"} for p in out.rglob("*"))
    assert not (out / "checkpoints").exists()
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["base_model"] == str(tiny_llm_nf4_dir)
    assert meta["base_model_fingerprint"] == directory_fingerprint(tiny_llm_nf4_dir)
    assert meta["data_sha256"] == file_sha256(echo_jsonl)
    assert meta["hyperparameters"]["quantization"] == "nf4"
    assert meta["hyperparameters"]["target_modules"] == "all-linear"
    assert meta["steps"] == 30
    assert meta["final_train_loss"] == losses[-1]
    assert meta["final_eval_loss"] is not None and meta["train_time_s"] > 0
    assert meta["n_train_examples"] + meta["n_eval_examples"] == 48

    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32
    assert adapter_config["base_model_name_or_path"] == str(tiny_llm_nf4_dir)
    # all-linear: every attention and MLP projection of the Llama, never the output head
    targeted = {name.rsplit(".", 1)[-1] for name in adapter_config["target_modules"]}
    assert targeted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

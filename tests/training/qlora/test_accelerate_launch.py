"""``lorag train-adapter`` under ``accelerate launch`` with 2 processes on CPU (DDP over gloo): one adapter, written by
the main process, equal to a single process's with the same global batch; and the FSDP-QLoRA storage option."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.training.qlora import QLoRAConfig, train_adapter

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "accelerate"
# dropout 0 and a constant schedule: two processes and one then differ only in how the batch is split
SETTINGS = ["--quantization", "none", "--max-steps", "3", "--rank", "4", "--lora-alpha", "8", "--dropout", "0"]
SETTINGS += ["--eval-fraction", "0", "--lr", "0.01", "--lr-scheduler", "constant", "--warmup-ratio", "0"]
SETTINGS += ["--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_two_processes(base: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(EXAMPLES / "cpu_2proc.yaml")]
    accelerate += ["--main_process_port", str(free_port()), "-m", "lorag", "train-adapter"]
    args = ["--base", str(base), "--data", str(data), "--output", str(out), *SETTINGS, *extra]
    # no GPU may be seen, or the processes would use it instead of gloo on the CPU
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*accelerate, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two interpreters import torch and train, then one more run: about 30 s on a loaded 2-core machine
def test_two_processes_train_in_step_and_write_one_adapter(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "two"
    done = launch_two_processes(tiny_llm_dir, echo_jsonl, out, "--batch-size", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("adapter saved to") == 1  # the main process reports for both

    names = {p.name for p in out.iterdir()}
    assert names == {"adapter_config.json", "adapter_model.safetensors", "training_metadata.json", "loss_curve.png"} | {
        "README.md"  # peft's model card
    }
    meta = json.loads((out / "training_metadata.json").read_text())
    assert meta["distributed"] == {"world_size": 2, "distributed_type": "MULTI_CPU", "global_batch_size": 4}
    assert meta["steps"] == 3
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), str(out))
    assert tuned.peft_config["default"].r == 4

    # In step: DDP averages the two halves' gradients (token-weighted: transformers' average_tokens_across_devices),
    # so 2 processes x 2 examples take the steps one process takes with 4, the same 4 examples each step.
    one = tmp_path / "one"
    config = QLoRAConfig(quantization="none", max_steps=3, rank=4, alpha=8, dropout=0.0, eval_fraction=0.0)
    config.learning_rate, config.lr_scheduler, config.warmup_ratio, config.batch_size = 0.01, "constant", 0.0, 4
    single = train_adapter(tiny_llm_dir, echo_jsonl, one, config, show_progress=False)
    assert single.metadata["distributed"]["world_size"] == 1

    a = load_file(out / "adapter_model.safetensors")
    b = load_file(one / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    moved = max(t.abs().max().item() for k, t in b.items() if "lora_B" in k)  # lora_B starts at zero
    assert moved > 1e-3
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)
    losses = [row["loss"] for row in meta["log_history"] if "loss" in row]
    assert losses == pytest.approx([row["loss"] for row in single.metadata["log_history"] if "loss" in row], abs=1e-4)


@pytest.mark.slow  # two interpreters import torch: about 10 s
def test_two_processes_stop_together_when_the_main_one_fails(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
    done = launch_two_processes(tiny_llm_dir, echo_jsonl, out)  # the main process refuses; the other must not hang
    assert done.returncode != 0
    assert "already holds an adapter" in done.stderr
    assert "process 1 stopped: the main process failed (OutputExistsError:" in done.stderr
    assert [p.name for p in out.iterdir()] == ["adapter_config.json"]


def test_a_bad_quant_storage_is_refused_naming_the_choices(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path):
    out = tmp_path / "adapter"
    args = ["train-adapter", "--base", str(tiny_llm_dir), "--data", str(echo_jsonl), "--output", str(out)]
    bad = CliRunner().invoke(app, [*args, "--quant-storage", "int4"])
    assert bad.exit_code == 2
    assert "--quant-storage) must be one of uint8, bfloat16, float16, float32; got 'int4'" in bad.output
    unquantized = CliRunner().invoke(app, [*args, "--quant-storage", "bfloat16", "--quantization", "none"])
    assert unquantized.exit_code == 2
    assert "needs quantization='nf4'; got quantization='none'" in unquantized.output
    assert not out.exists()
    with pytest.raises(ValueError, match="compute_dtype must be 'auto' or 'bfloat16'"):
        QLoRAConfig(quant_storage="bfloat16", compute_dtype="float32").validate()


def test_fsdp_with_uint8_storage_is_refused_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate launch sets for an FSDP config
    out = tmp_path / "adapter"
    with pytest.raises(ValueError, match=r"FSDP shards only float tensors .* \(--quant-storage bfloat16\)"):
        train_adapter("no-such-base", tmp_path / "no-such.jsonl", out)  # refused before the (missing) inputs are read
    assert not out.exists()


def test_float_storage_loads_one_dtype_for_fsdp(tiny_llm_nf4_dir: Path) -> None:
    import torch

    from lorag.training.loading import load_base_model
    from lorag.training.methods import make_trainable

    config = QLoRAConfig(quant_storage="bfloat16")
    model = make_trainable(load_base_model(str(tiny_llm_nf4_dir), config), config)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # FSDP flattens a unit of one dtype only
    assert any(type(p).__name__ == "Params4bit" for p in model.parameters())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}


def test_example_configs_say_what_the_readme_does() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    fsdp = load_config_from_file(str(EXAMPLES / "fsdp_qlora.yaml"))
    assert (fsdp.distributed_type.value, fsdp.num_processes, fsdp.mixed_precision) == ("FSDP", 2, "bf16")
    assert fsdp.fsdp_config["fsdp_use_orig_params"] is False
    assert fsdp.fsdp_config["fsdp_cpu_ram_efficient_loading"] is True
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    zero3 = load_config_from_file(str(EXAMPLES / "deepspeed_zero3.yaml"))
    assert (zero3.distributed_type.value, zero3.deepspeed_config["zero_stage"]) == ("DEEPSPEED", 3)
    cpu = load_config_from_file(str(EXAMPLES / "cpu_2proc.yaml"))
    assert (cpu.num_processes, cpu.mixed_precision) == (2, "no")

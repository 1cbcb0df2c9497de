"""``train_adapter`` under ``accelerate launch`` (or ``torchrun``): one process writes, the others wait for it.

Every process runs ``train_adapter`` whole: the same checks, data and model, and transformers' ``Trainer`` splits each
batch between them (DDP, FSDP or DeepSpeed, as the accelerate config says). Only the main process (accelerate's
``PartialState().is_main_process``) touches the output directory: it takes the lock, checks the output, writes the run
config, the adapter, the metadata and the plot, and removes the checkpoints. The others wait for it at a collective
that also carries its failure (output busy, already holding an adapter, a full disk), so every process stops with that
message instead of hanging at the next collective. The output must be on a file system every process sees (one machine
or a shared one), as transformers' checkpoints already assume.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lorag._imports import require
from lorag.training.config import QLoRAConfig
from lorag.training.output import publish, staging_dir

T = TypeVar("T")


class MainProcessError(RuntimeError):
    """The main process failed a step the other processes were waiting on; its message says why."""


def process_state() -> Any:
    """accelerate's ``PartialState``, started now so that each process has its device before the model loads.

    Under ``accelerate launch`` this joins the process group (gloo on CPU, NCCL on GPUs) and selects this process's
    GPU, so a 4-bit base goes to ``cuda:<local rank>`` rather than every process's ``cuda:0``. A single plain process
    gets a one-process state and nothing else changes.
    """
    accelerate = require("accelerate", purpose="training adapters")
    torch = require("torch", purpose="training adapters")
    return accelerate.PartialState(cpu=not torch.cuda.is_available())


def on_main(state: Any, step: Callable[[], T]) -> T:
    """Run ``step`` on the main process only and give its result, or its failure, to every process.

    The others raise ``MainProcessError`` with the main process's message (its exception may not survive pickling).
    """
    if state.num_processes == 1:
        return step()
    from accelerate.utils import broadcast_object_list

    payload: list[Any] = [None]
    error: BaseException | None = None
    if state.is_main_process:
        try:
            payload = [(True, step())]
        except Exception as err:  # sent to the others, then raised here
            error = err
            payload = [(False, f"{type(err).__name__}: {err}")]
    broadcast_object_list(payload, from_process=0)
    if error is not None:
        raise error
    ok, value = payload[0]
    if not ok:
        raise MainProcessError(f"process {state.process_index} stopped: the main process failed ({value})")
    return value  # type: ignore[no-any-return]


def check_fsdp_storage(config: QLoRAConfig) -> None:
    """Refuse FSDP on NF4 weights stored as ``uint8`` before the model loads: FSDP shards only float tensors."""
    from accelerate.utils import parse_flag_from_env

    if config.quantization == "nf4" and config.quant_storage == "uint8" and parse_flag_from_env("ACCELERATE_USE_FSDP"):
        raise ValueError(
            "FSDP shards only float tensors and NF4 weights are stored as uint8 unless told otherwise: pass "
            "quant_storage='bfloat16' (--quant-storage bfloat16) to match the accelerate config's mixed_precision "
            "(bitsandbytes' FSDP-QLoRA guide), or launch without FSDP"
        )


def save_result(trainer: Any, model: Any, tokenizer: Any, output: Path, base_reference: str, state: Any) -> None:
    """Save the trained adapter (or the whole model for ``method="full"``) into ``output``; every process calls this.

    ``Trainer.save_model`` gathers the full weights where they are sharded (FSDP, switched to a full state dict for
    this save as peft's FSDP example does; DeepSpeed ZeRO-3) and writes from the main process only. It writes into a
    staging directory inside ``output`` that the main process then moves in, so no half result is ever seen. A peft
    adapter records ``base_reference`` as its base.
    """
    for cfg in (getattr(model, "peft_config", None) or {}).values():
        cfg.base_model_name_or_path = base_reference
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    staging = on_main(state, lambda: staging_dir(output))
    error: Exception | None = None
    try:
        trainer.save_model(str(staging))
    except Exception as err:  # the main process cleans up and reports in finish(); another one re-raises below
        error = err

    def finish() -> None:
        if error is not None:
            shutil.rmtree(staging, ignore_errors=True)
            raise error
        if not getattr(model, "peft_config", None):
            tokenizer.save_pretrained(str(staging))
        publish(staging, output)

    on_main(state, finish)
    if error is not None:
        raise error


def run_record(trainer: Any, config: QLoRAConfig) -> dict[str, Any]:
    """How the run was spread: processes, accelerate's distributed type, and the examples per optimizer step."""
    world_size = int(trainer.args.world_size)
    return {
        "world_size": world_size,
        "distributed_type": str(trainer.accelerator.distributed_type.value),
        "global_batch_size": config.batch_size * config.grad_accum * world_size,
    }

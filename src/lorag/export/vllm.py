"""vLLM's ``--lora-modules name=PATH``: a peft folder (``adapter_config.json`` + ``adapter_model.safetensors``).

vLLM reads that layout as peft writes it, so the export copies both files unchanged and does what vLLM would only
do at load time, on the GPU machine: it refuses DoRA, ``modules_to_save`` and biases (vLLM's ``PEFTHelper``), a
rank above the largest ``--max-lora-rank`` vLLM accepts, and, on a Llama-type base, modules outside the attention
and MLP projections it serves LoRA on. With a base, every module and shape is checked against it too. The result
says which ``--max-lora-rank`` to start vLLM with (its default, 16, refuses larger ranks). Not run against a vLLM
server here (it needs a GPU).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lorag.export._output import ExportResult, atomic_output, check_output
from lorag.export.base_model import BaseModel, load_base_model
from lorag.export.lora_adapter import CONFIG_NAME, WEIGHTS_NAME, AdapterExportError, load_lora_adapter

#: The values vLLM's ``--max-lora-rank`` accepts (vLLM's LoRAConfig); an adapter's rank must not exceed it.
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: The projections vLLM applies LoRA to in its Llama-type models (packed into qkv_proj and gate_up_proj).
VLLM_LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def to_vllm(
    adapter_dir: str | Path,
    output: str | Path,
    *,
    base: str | Path | BaseModel | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Check ``adapter_dir`` against what vLLM loads and write it as a folder for ``--lora-modules``.

    Raises:
        AdapterExportError: vLLM would refuse the adapter, it does not fit ``base``, or ``output`` exists without
            ``overwrite``. Nothing is written then.
    """
    output = Path(output).expanduser()
    check_output(output, overwrite=overwrite, directory=True)
    adapter = load_lora_adapter(adapter_dir)
    weights_file = adapter.path / WEIGHTS_NAME
    rank = max(adapter.ranks)
    if rank > VLLM_MAX_LORA_RANKS[-1]:
        raise AdapterExportError(
            f"{weights_file}: rank {rank} exceeds the largest --max-lora-rank vLLM accepts "
            f"({VLLM_MAX_LORA_RANKS[-1]}); retrain with r <= {VLLM_MAX_LORA_RANKS[-1]}"
        )
    unsupported = sorted({m.rsplit(".", 1)[-1] for m in adapter.pairs} - set(VLLM_LLAMA_MODULES))
    if unsupported:
        raise AdapterExportError(
            f"{weights_file}: vLLM serves LoRA on a Llama-type model's {', '.join(VLLM_LLAMA_MODULES)} only, "
            f"not {', '.join(unsupported)}; retrain with target_modules among those"
        )
    if base is not None:
        base_model = base if isinstance(base, BaseModel) else load_base_model(base)
        base_model.match(adapter)
    with atomic_output(output, overwrite=overwrite, directory=True) as tmp:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(adapter.path / name, tmp / name)
    max_lora_rank = next(r for r in VLLM_MAX_LORA_RANKS if r >= rank)
    return ExportResult(
        output,
        "vllm",
        {
            "rank": rank,
            "max_lora_rank": max_lora_rank,
            "modules": sorted({m.rsplit(".", 1)[-1] for m in adapter.pairs}),
            "serve": f"vllm serve BASE --enable-lora --max-lora-rank {max_lora_rank} "
            f"--lora-modules {output.name}={output.resolve()}",
        },
    )

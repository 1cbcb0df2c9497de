"""llama.cpp's LoRA GGUF (``llama-server --lora FILE``) from a peft LoRA adapter, written with gguf-py's writer.

The layout follows llama.cpp's ``convert_lora_to_gguf.py`` (read, not copied): ``general.type = "adapter"``,
``adapter.type = "lora"``, ``adapter.lora.alpha`` as float32 and ``general.architecture`` of the base; each adapted
weight ``W`` of the base GGUF becomes ``W.lora_a`` (peft's A, numpy shape ``(r, in)``, GGUF ne ``[in, r]``) and
``W.lora_b`` (peft's B, ``(out, r)``, ne ``[r, out]``), in float32 (the converter's default outtype). For a Llama
base the converter permutes the rows of ``attn_q`` / ``attn_k`` (HF keeps each head's rotary halves apart, llama.cpp
interleaves them); on a LoRA pair that permutes the rows of B only, as done here. llama.cpp scales by ``alpha / r``,
so an rsLoRA adapter (``alpha / sqrt(r)``) is written with ``alpha * sqrt(r)``: same update, which the converter
itself does not do.

Verified here without a server: the file reads back with ``gguf.GGUFReader`` (keys, names, shapes, values), every
tensor name and shape matches the base GGUF the adapter targets (the shipped SmolLM2 GGUF in the tests), and the
q/k row permutation matches the base GGUF's own q/k weights. With a ``llama-server`` built by
``lorag.serving.llama_server``, ``tests/llm/remote/test_llama_server.py`` checks that it loads the file and that
scale 1 vs 0 serves the adapter vs the bare base.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lorag._imports import require
from lorag.export._output import ExportResult, atomic_output, check_output
from lorag.export.base_model import BaseModel, load_base_model
from lorag.export.lora_adapter import AdapterExportError, LoraAdapter, load_lora_adapter

LORA_A_SUFFIX = ".lora_a"
LORA_B_SUFFIX = ".lora_b"


def to_gguf(
    adapter_dir: str | Path, base: str | Path | BaseModel, output: str | Path, *, overwrite: bool = False
) -> ExportResult:
    """Write ``adapter_dir`` as a llama.cpp LoRA GGUF for ``base`` (GGUF file, model folder or lorag short name).

    Raises:
        AdapterExportError: the adapter is not an exportable LoRA, it adapts modules or shapes the base lacks, or
            ``output`` exists without ``overwrite``. Nothing is written then.
    """
    output = Path(output).expanduser()
    check_output(output, overwrite=overwrite, directory=False)
    adapter = load_lora_adapter(adapter_dir)
    base_model = base if isinstance(base, BaseModel) else load_base_model(base)
    alpha = gguf_alpha(adapter)
    tensors = gguf_tensors(adapter, base_model)
    gguf = require("gguf", purpose="writing GGUF files")
    with atomic_output(output, overwrite=overwrite, directory=False) as tmp:
        writer = gguf.GGUFWriter(tmp, arch=base_model.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(adapter.path.resolve().name)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return ExportResult(
        output,
        "gguf",
        {"base": base_model.source, "arch": base_model.arch, "alpha": alpha, "tensors": len(tensors)},
    )


def gguf_alpha(adapter: LoraAdapter) -> float:
    """The one ``adapter.lora.alpha`` that gives every module peft's scale under llama.cpp's ``alpha / r``."""
    config_file = adapter.path / "adapter_config.json"
    if adapter.config.get("alpha_pattern"):
        raise AdapterExportError(
            f"{config_file}: alpha_pattern gives modules their own alpha; a llama.cpp adapter has one alpha: "
            "retrain with a single lora_alpha"
        )
    if not adapter.config.get("use_rslora"):
        return adapter.alpha
    if len(adapter.ranks) != 1:
        raise AdapterExportError(
            f"{config_file}: rsLoRA with ranks {sorted(adapter.ranks)} needs one scale per rank; llama.cpp has one "
            "alpha: retrain with a single rank"
        )
    return adapter.alpha * math.sqrt(next(iter(adapter.ranks)))


def gguf_tensors(adapter: LoraAdapter, base: BaseModel) -> dict[str, Any]:
    """``name.lora_a`` / ``name.lora_b`` float32 arrays, named and checked against ``base``'s tensors."""
    tensors: dict[str, Any] = {}
    for module, name in base.match(adapter).items():
        a, b = adapter.pairs[module]
        b_rows = b.numpy()
        if base.arch == "llama" and name.endswith(".attn_q.weight"):
            b_rows = rope_rows(b_rows, base.n_head)
        elif base.arch == "llama" and name.endswith(".attn_k.weight"):
            b_rows = rope_rows(b_rows, base.n_head_kv)
        tensors[name + LORA_A_SUFFIX] = a.numpy().copy()
        tensors[name + LORA_B_SUFFIX] = b_rows.copy()
    return tensors


def rope_rows(rows: Any, n_head: int) -> Any:
    """Reorder output rows from HF's per-head ``[first halves | second halves]`` to llama.cpp's interleaved pairs.

    The same reordering llama.cpp's converter applies to a Llama base's q and k weights; a LoRA update ``B @ A``
    must be reordered alike, which only touches B's rows.
    """
    out, rest = rows.shape[0], rows.shape[1:]
    return rows.reshape(n_head, 2, out // n_head // 2, *rest).swapaxes(1, 2).reshape(rows.shape)

"""A base GGUF with its 4- and 5-bit block weights rewritten as Q8_0, for llama.cpp's CPU kernels.

Why: on this project's CPU (AVX-512) llama.cpp's Q8_0 kernels beat its Q4_1 ones both ways: SmolLM2-135M-Instruct's
packaged Q4_1 GGUF decodes 85.7 tokens/s, its Q8_0 copy 112.3 (one thread, ``benchmarks/results/decode.md``), and
reads a 331-token RAG prompt at 169 against 386 tokens/s (``benchmarks/results/rag_defaults.md`` section 11). Q8_0
keeps every value of a 4- or 5-bit block to within half a step, 1/254 of the block's largest magnitude, plus the
rounding of its fp16 scale (on SmolLM2 at most 1/230, 0.6% mean relative error), so the copy answers as the
original does up to near ties. Metadata (tokenizer, chat template, hyperparameters) and every other tensor are
copied unchanged. gguf-py's reader, quantizer and writer do the work; llama.cpp's ``llama-quantize`` would need
another native build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorag._imports import require
from lorag.export._output import atomic_output

#: Block types rewritten as Q8_0 (gguf-py dequantizes them exactly).
LOW_BIT_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K")


def low_bit_tensors(source: str | Path) -> list[str]:
    """The tensors of ``source`` stored in a type of ``LOW_BIT_TYPES``."""
    gguf = require("gguf", purpose="reading GGUF files")
    return [t.name for t in gguf.GGUFReader(source).tensors if t.tensor_type.name in LOW_BIT_TYPES]


def to_q8_0(source: str | Path, output: str | Path) -> Path:
    """Write ``source`` to ``output`` with its ``LOW_BIT_TYPES`` tensors as Q8_0 (atomically: all or nothing)."""
    gguf = require("gguf", purpose="writing GGUF files")
    reader = gguf.GGUFReader(source)
    q8_0 = gguf.GGMLQuantizationType.Q8_0
    output = Path(output)
    with atomic_output(output, overwrite=True, directory=False) as tmp:
        writer = gguf.GGUFWriter(tmp, arch=reader.fields["general.architecture"].contents())
        for name, field in reader.fields.items():
            if name.startswith("GGUF.") or name == "general.architecture":  # the file header; written by the writer
                continue
            writer.add_key_value(name, field.contents(), field.types[0], sub_type=_sub_type(field))
        for tensor in reader.tensors:
            if tensor.tensor_type.name in LOW_BIT_TYPES:
                values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                data = gguf.quants.quantize(values.reshape([int(n) for n in reversed(tensor.shape)]), q8_0)
                writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=q8_0)
            else:
                writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return output


def _sub_type(field: Any) -> Any:
    """An array field's element type (None for scalars)."""
    return field.types[1] if len(field.types) > 1 else None

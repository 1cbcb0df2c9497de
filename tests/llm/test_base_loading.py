"""Base loading: quantization choices on CPU (bitsandbytes), memory footprint, settings and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.llm import LoragEngine, load_base
from lorag.models import ModelNotAvailableError


@pytest.mark.parametrize("quantization", ["nf4", "fp4", "int8"])
def test_quantized_bases_are_smaller_and_generate(tiny_llm64_dir: Path, quantization: str, llm_device: str) -> None:
    full = load_base(tiny_llm64_dir, quantization="none", device=llm_device)
    quant = load_base(tiny_llm64_dir, quantization=quantization, device=llm_device, double_quant=False)
    assert quant.settings.quantization == quantization and quant.settings.device == llm_device
    expected_dtype = "float32" if llm_device == "cpu" else "bfloat16"
    assert quant.settings.compute_dtype == expected_dtype and not quant.settings.trust_remote_code
    layer = quant.model.model.layers[0].self_attn.q_proj
    expected = {"nf4": "Linear4bit", "fp4": "Linear4bit", "int8": "Linear8bitLt"}[quantization]
    assert type(layer).__name__ == expected
    assert quant.footprint.total_bytes < full.footprint.total_bytes
    assert "uint8" in quant.footprint.by_dtype or "int8" in quant.footprint.by_dtype
    assert quant.fingerprint == full.fingerprint  # same directory, same content
    engine = LoragEngine(base=quant)
    assert engine.generate("The quick brown fox", max_tokens=4).usage.completion_tokens >= 1
    engine.close()


def test_nf4_is_four_bits_per_quantized_weight(tiny_llm64_dir: Path, llm_device: str) -> None:
    base = load_base(tiny_llm64_dir, quantization="nf4", device=llm_device, double_quant=False)
    packed = sum(
        m.weight.numel() for m in base.model.modules() if type(m).__name__ == "Linear4bit"
    )  # bytes: two weights per byte
    weights = sum(m.in_features * m.out_features for m in base.model.modules() if type(m).__name__ == "Linear4bit")
    assert packed * 2 == weights


def test_bad_settings_are_named(tiny_llm_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown quantization 'q3'.*nf4, fp4, int8, none"):
        load_base(tiny_llm_dir, quantization="q3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compute_dtype"):
        load_base(tiny_llm_dir, quantization="none", compute_dtype="float8")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load_base(tiny_llm_dir, quantization="none", device="tpu")
    with pytest.raises(ModelNotAvailableError):
        load_base("/nonexistent/model/dir", quantization="none")


def test_cuda_request_without_gpu_is_clear(tiny_llm_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        load_base(tiny_llm_dir, quantization="none", device="cuda")

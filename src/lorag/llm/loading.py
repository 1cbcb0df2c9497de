"""Loading a causal-LM base once, optionally quantized with bitsandbytes, from any lorag model reference.

The base is the expensive part (hundreds of MB to GB); adapters are small and come and go on top of it. So the
base is loaded exactly once, in eval mode, with everything that changes its outputs recorded in ``BaseSettings``
and a content fingerprint of its directory, which the adapter registry compares with what an adapter was trained on.

Nothing here contacts the Hugging Face hub at run time for a local model: local directories load with
``local_files_only=True``. bitsandbytes is imported only for a quantized base, and then with the hub offline (at
import it would fetch an optional CPU kernel from the hub; see ``lorag._bitsandbytes``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lorag import _bitsandbytes
from lorag._imports import require
from lorag.fingerprint import directory_fingerprint
from lorag.models import resolve_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

Quantization = Literal["nf4", "fp4", "int8", "none"]
QUANTIZATIONS: tuple[str, ...] = ("nf4", "fp4", "int8", "none")
_DTYPES = ("float32", "bfloat16", "float16")


def import_bitsandbytes() -> Any:
    """bitsandbytes, fully imported without letting it fetch optional kernels from the hub (``lorag._bitsandbytes``)."""
    return _bitsandbytes.load()


@dataclass(frozen=True)
class BaseSettings:
    """Everything about the base that changes its outputs; part of every cache key and of the engine identity.

    Attributes:
        model: The reference as given (short name, path or hub id).
        quantization: ``nf4`` (default, QLoRA's 4-bit NormalFloat), ``fp4``, ``int8`` (LLM.int8) or ``none``.
        compute_dtype: dtype of activations in 4-bit matmuls and of unquantized weights (``float32`` by default on
            CPU, ``bfloat16`` on CUDA). Note that bitsandbytes' CPU 4-bit kernel computes in bfloat16 on CPUs with
            AVX512-BF16 whatever this says.
        double_quant: Quantize the 4-bit scales too (saves ~0.4 bit per weight).
        device: ``cpu`` or ``cuda`` (``cuda:N``); ``auto`` picks CUDA when present.
        trust_remote_code: Run modelling code shipped with the model; off unless you trust the source.
    """

    model: str
    quantization: Quantization = "nf4"
    compute_dtype: str = "float32"
    double_quant: bool = True
    device: str = "cpu"
    trust_remote_code: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MemoryFootprint:
    """Bytes the loaded base holds, by parameter storage dtype (packed 4-bit weights show up as ``uint8``)."""

    total_bytes: int
    by_dtype: dict[str, int] = field(default_factory=dict)

    @property
    def total_mib(self) -> float:
        return self.total_bytes / 2**20


@dataclass
class LoadedBase:
    """A loaded base model with its tokenizer, settings, resolved directory and content fingerprint."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    settings: BaseSettings
    path: str
    fingerprint: str

    @property
    def footprint(self) -> MemoryFootprint:
        return memory_footprint(self.model)


def memory_footprint(model: torch.nn.Module) -> MemoryFootprint:
    """Bytes of parameters and buffers, counted once each (tied weights are shared)."""
    seen: set[int] = set()
    by_dtype: dict[str, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        key = str(tensor.dtype).removeprefix("torch.")
        by_dtype[key] = by_dtype.get(key, 0) + tensor.numel() * tensor.element_size()
    return MemoryFootprint(sum(by_dtype.values()), by_dtype)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else is checked and returned."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but torch sees no CUDA GPU; use device='cpu' or 'auto'")
        return device
    raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def quantization_config(settings: BaseSettings) -> Any:
    """The transformers ``BitsAndBytesConfig`` for these settings, or None for ``quantization='none'``."""
    if settings.quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {settings.quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if settings.quantization == "none":
        return None
    import torch
    import transformers

    import_bitsandbytes()
    if settings.quantization == "int8":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quantization,
        bnb_4bit_compute_dtype=getattr(torch, settings.compute_dtype),
        bnb_4bit_use_double_quant=settings.double_quant,
    )


def load_base(
    model: str | os.PathLike[str] = "smollm2-135m-instruct",
    *,
    quantization: Quantization = "nf4",
    compute_dtype: str | None = None,
    double_quant: bool = True,
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedBase:
    """Load a causal LM and its tokenizer for inference (eval mode, no gradients).

    Args:
        model: A lorag short name, a local directory or a hub id (see ``lorag.models.resolve_model``).
        quantization: ``nf4`` (default), ``fp4``, ``int8`` or ``none``.
        compute_dtype: ``float32``, ``bfloat16`` or ``float16``; default ``float32`` on CPU, ``bfloat16`` on CUDA.
        double_quant: Double quantization of the 4-bit scales.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        trust_remote_code: Allow modelling code from the model repository (off by default).

    Raises:
        ModelNotAvailableError: The reference cannot be resolved offline.
        ValueError: An unknown quantization, dtype or device.
    """
    torch = require("torch", purpose="LLM inference")
    transformers = require("transformers", purpose="LLM inference")
    resolved_device = resolve_device(device)
    dtype_name = compute_dtype or ("bfloat16" if resolved_device.startswith("cuda") else "float32")
    if dtype_name not in _DTYPES:
        raise ValueError(f"unknown compute_dtype {dtype_name!r}; choose one of {', '.join(_DTYPES)}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    settings = BaseSettings(
        model=os.fspath(model),
        quantization=quantization,
        compute_dtype=dtype_name,
        double_quant=double_quant,
        device=resolved_device,
        trust_remote_code=trust_remote_code,
    )
    path = resolve_model(model)
    local = Path(path).is_dir()
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, **common)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        path,
        dtype=getattr(torch, dtype_name),
        quantization_config=quantization_config(settings),
        device_map=resolved_device,
        **common,
    )
    loaded.eval()
    loaded.requires_grad_(False)
    fingerprint = directory_fingerprint(path)
    base = LoadedBase(loaded, tokenizer, settings, path, fingerprint)
    logger.info(
        "loaded %s (%s, %s) on %s: %.1f MiB",
        settings.model,
        quantization,
        dtype_name,
        resolved_device,
        base.footprint.total_mib,
    )
    return base

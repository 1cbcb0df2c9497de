"""Loading a causal-LM base once, optionally quantized with bitsandbytes, from any lorag model reference.

The base is the expensive part (hundreds of MB to GB); adapters are small and come and go on top of it. So the
base is loaded exactly once, in eval mode, with everything that changes its outputs recorded in ``BaseSettings``
and a content fingerprint of its directory, which the adapter registry compares with what an adapter was trained on.

Nothing here contacts the Hugging Face hub at run time for a local model: local directories load with
``local_files_only=True``. bitsandbytes is imported only for a quantized base, and then with the hub offline (at
import it would fetch an optional CPU kernel from the hub; see ``lorag._bitsandbytes``).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lorag import _bitsandbytes
from lorag._imports import require
from lorag.fingerprint import directory_fingerprint
from lorag.llm.cpu_layout import lay_out_for_cpu_products
from lorag.models import resolve_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

Quantization = Literal["nf4", "fp4", "int8", "none"]
QUANTIZATIONS: tuple[str, ...] = ("nf4", "fp4", "int8", "none")
_DTYPES = ("float32", "bfloat16", "float16")
LmHeadDtype = Literal["bfloat16", "int8"]
LM_HEAD_DTYPES: tuple[str, ...] = ("bfloat16", "int8")


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
        lm_head_dtype: ``None`` (the output layer as loaded) or the lower precision its copy runs in
            (``bfloat16``, ``int8``; see ``lower_lm_head``).
    """

    model: str
    quantization: Quantization = "nf4"
    compute_dtype: str = "float32"
    double_quant: bool = True
    device: str = "cpu"
    trust_remote_code: bool = False
    lm_head_dtype: LmHeadDtype | None = None

    def as_dict(self) -> dict[str, Any]:
        """The settings; ``lm_head_dtype`` only when set, so versions made before the option existed still hold."""
        settings = asdict(self)
        if settings["lm_head_dtype"] is None:
            del settings["lm_head_dtype"]
        return settings


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
    import torch

    return bnb_config(
        settings.quantization, compute_dtype=getattr(torch, settings.compute_dtype), double_quant=settings.double_quant
    )


def bnb_config(quantization: str, *, compute_dtype: Any, double_quant: bool = True, quant_storage: Any = None) -> Any:
    """The one place lorag builds a ``BitsAndBytesConfig`` (serving and training): ``nf4`` / ``fp4`` 4-bit,
    ``int8``, or None for ``none``. ``quant_storage`` (a torch dtype) is the 4-bit weights' storage type, a float one
    for FSDP-QLoRA; None keeps bitsandbytes' uint8. bitsandbytes is imported with the hub offline."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if quantization == "none":
        return None
    import transformers

    import_bitsandbytes()
    if quantization == "int8":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    storage = {} if quant_storage is None else {"bnb_4bit_quant_storage": quant_storage}
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=double_quant,
        **storage,
    )


def check_lm_head_dtype(lm_head_dtype: str | None, device: str) -> None:
    """Refuse an unknown ``lm_head_dtype``, and ``int8`` off the CPU (its kernel is the CPU one)."""
    if lm_head_dtype is not None and lm_head_dtype not in LM_HEAD_DTYPES:
        raise ValueError(
            f"unknown lm_head_dtype {lm_head_dtype!r}; choose one of {', '.join(LM_HEAD_DTYPES)} or None (as loaded)"
        )
    if lm_head_dtype == "int8" and device != "cpu":
        raise ValueError(f"lm_head_dtype='int8' runs torch's CPU int8 kernel; on {device} use 'bfloat16' or None")


def lower_lm_head(model: PreTrainedModel, lm_head_dtype: LmHeadDtype) -> None:
    """Run the output layer (``lm_head``) from its own lower-precision copy; the input embedding stays as loaded.

    The decode step of a small model reads the output layer once per token, and with tied embeddings it is a full
    precision matrix (SmolLM2-135M: 49152 x 576 in float32, 113 MB, two thirds of the bytes an NF4 step reads; the
    bitsandbytes-quantized bases keep it unquantized). The lookup of the input embedding needs only one row per
    token, so it keeps the exact weights while the product reads the copy:

    - ``bfloat16``: the weight and the hidden state rounded to bfloat16 (half the bytes); the product accumulates in
      float32 (oneDNN on CPUs with AVX512-BF16 or AMX; tensor cores on CUDA).
    - ``int8``: symmetric int8 per output row with a bfloat16 scale (a quarter of the bytes), computed by torch's
      weight-only int8 kernel (``torch._weight_int8pack_mm``) on the hidden state in bfloat16; CPU only.

    The logits change (bfloat16 keeps 8 significant bits of the hidden state and weights; int8 adds its rounding of
    the weights), so greedy tokens can differ from the default path where two candidates are close:
    ``benchmarks/results/decode.md`` counts the matching tokens and measures the speed. With tied embeddings the copy
    is extra memory (SmolLM2-135M: 57 MB in bfloat16, 28 MB in int8); an adapter may not target ``lm_head`` here.
    """
    import torch

    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        raise ValueError(f"lm_head_dtype needs a bias-free torch.nn.Linear output layer, got {type(head).__name__}")
    model.set_output_embeddings(low_precision_head_class()(head.weight.detach(), lm_head_dtype))


@functools.cache
def low_precision_head_class() -> type[torch.nn.Module]:
    """The output layer ``lower_lm_head`` puts in (defined on first use: torch is imported lazily)."""
    import torch

    class LowPrecisionHead(torch.nn.Module):
        """A bias-free output layer computed in bfloat16, or in int8 with bfloat16 row scales."""

        stored_weight: torch.Tensor
        scales: torch.Tensor | None

        def __init__(self, weight: torch.Tensor, lm_head_dtype: LmHeadDtype) -> None:
            super().__init__()
            self.lm_head_dtype = lm_head_dtype
            self.out_features, self.in_features = weight.shape
            full = weight.float()
            scales = None
            if lm_head_dtype == "bfloat16":
                stored = full.to(torch.bfloat16)
            else:  # quantize with the scale as stored, so dequantizing uses exactly the scale rounding used
                scales = (full.abs().amax(dim=1).clamp(min=1e-8) / 127).to(torch.bfloat16)
                stored = torch.round(full / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
            self.register_buffer("stored_weight", stored.contiguous())
            self.register_buffer("scales", scales)

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            flat = hidden.reshape(-1, self.in_features).to(torch.bfloat16)
            if self.scales is None:
                logits = torch.nn.functional.linear(flat, self.stored_weight)
            else:
                logits = torch._weight_int8pack_mm(flat, self.stored_weight, self.scales)
            return logits.to(hidden.dtype).reshape(*hidden.shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.lm_head_dtype}"

    return LowPrecisionHead


def load_base(
    model: str | os.PathLike[str] = "smollm2-135m-instruct",
    *,
    quantization: Quantization = "nf4",
    compute_dtype: str | None = None,
    double_quant: bool = True,
    device: str = "auto",
    trust_remote_code: bool = False,
    lm_head_dtype: LmHeadDtype | None = None,
) -> LoadedBase:
    """Load a causal LM and its tokenizer for inference (eval mode, no gradients).

    Args:
        model: A lorag short name, a local directory or a hub id (see ``lorag.models.resolve_model``).
        quantization: ``nf4`` (default), ``fp4``, ``int8`` or ``none``.
        compute_dtype: ``float32``, ``bfloat16`` or ``float16``; default ``float32`` on CPU, ``bfloat16`` on CUDA.
        double_quant: Double quantization of the 4-bit scales.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        trust_remote_code: Allow modelling code from the model repository (off by default).
        lm_head_dtype: None (default: the output layer as loaded), ``bfloat16`` or ``int8`` (CPU): the output
            layer runs from a lower-precision copy, the input embedding stays exact (see ``lower_lm_head``). Off by
            default because greedy outputs can change.

    Raises:
        ModelNotAvailableError: The reference cannot be resolved offline.
        ValueError: An unknown quantization, dtype, device or lm_head_dtype.
    """
    torch = require("torch", purpose="LLM inference")
    transformers = require("transformers", purpose="LLM inference")
    resolved_device = resolve_device(device)
    dtype_name = compute_dtype or ("bfloat16" if resolved_device.startswith("cuda") else "float32")
    if dtype_name not in _DTYPES:
        raise ValueError(f"unknown compute_dtype {dtype_name!r}; choose one of {', '.join(_DTYPES)}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    check_lm_head_dtype(lm_head_dtype, resolved_device)
    settings = BaseSettings(
        model=os.fspath(model),
        quantization=quantization,
        compute_dtype=dtype_name,
        double_quant=double_quant,
        device=resolved_device,
        trust_remote_code=trust_remote_code,
        lm_head_dtype=lm_head_dtype,
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
    if lm_head_dtype is not None:
        lower_lm_head(loaded, lm_head_dtype)
    if resolved_device == "cpu":
        lay_out_for_cpu_products(loaded)
    fingerprint = directory_fingerprint(path)
    base = LoadedBase(loaded, tokenizer, settings, path, fingerprint)
    logger.info(
        "loaded %s (%s, %s, lm_head %s) on %s: %.1f MiB",
        settings.model,
        quantization,
        dtype_name,
        lm_head_dtype or "as loaded",
        resolved_device,
        base.footprint.total_mib,
    )
    return base

"""Which engine answers ``lorag ask`` / ``eval-rag`` (``--engine``), and at which precision (``--quantization``).

``torch`` (the default) is lorag's PyTorch engine; its ``--quantization`` defaults to the precision the adapter was
trained at, when its ``training_metadata.json`` records one: the grounded adapter was trained on the full-precision
base and answered the dev questions best there (SQuAD dev F1 0.462 against 0.379 on the NF4 base, HotpotQA 0.210
against 0.155: ``benchmarks/results/rag_defaults.md`` section 11). Without such a record it is NF4, as before.
``llama.cpp`` (``lorag.llm.llama_cpp``) runs the model's GGUF on llama.cpp's kernels, LoRA adapters per request:
answers within a point of full precision, sooner (section 11), where a ``llama-server`` is built.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from lorag.cli import usage_error

#: The torch engine's precision when neither the flag nor the adapter says.
FALLBACK_QUANTIZATION = "nf4"


class LlmEngine(str, Enum):
    """What decodes the answers (``--engine``)."""

    torch = "torch"
    llama_cpp = "llama.cpp"


ENGINE_OPTION = typer.Option(
    LlmEngine.torch,
    "--engine",
    help="What decodes the answers: torch (LoragEngine: --quantization, --lm-head-dtype) or llama.cpp (the model's "
    "GGUF on llama.cpp's CPU kernels, LoRA adapters; needs python -m lorag.serving.llama_server build once).",
)


def check_engine_flags(engine: LlmEngine, quantization: str | None, lm_head_dtype: str) -> None:
    """``--quantization`` and ``--lm-head-dtype`` set the torch engine: with ``llama.cpp`` they exit 2, naming them."""
    if engine is LlmEngine.llama_cpp and (quantization is not None or lm_head_dtype != "none"):
        raise usage_error(
            "--quantization and --lm-head-dtype set the torch engine; --engine llama.cpp runs the model's GGUF: "
            "leave them out"
        )


def load_engine(
    engine: LlmEngine,
    model: str,
    adapter_dir: Path | None,
    quantization: str | None,
    lm_head_dtype: str | None,
    *,
    default_adapter: bool,
) -> Any:
    """The engine asked for, with the user's adapter registered; the
    grounded adapter (``default_adapter``: no ``--adapter`` given) is registered by the caller. llama.cpp's server
    starts later (``LlamaCppEngine.start``)."""
    adapters = {adapter_dir.name: str(adapter_dir)} if adapter_dir is not None else {}
    if engine is LlmEngine.llama_cpp:
        from lorag.llm.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(model, adapters=adapters)
    from lorag.llm import LoragEngine
    from lorag.llm.adapters.validation import recorded_quantization

    if quantization is None:
        trained_on = _grounded_for(model) if default_adapter else adapter_dir
        quantization = recorded_quantization(trained_on) or FALLBACK_QUANTIZATION
    return LoragEngine(
        model,
        quantization=quantization,  # type: ignore[arg-type]
        adapters=adapters,
        lm_head_dtype=lm_head_dtype,  # type: ignore[arg-type]
    )


def engine_label(llm: Any) -> str:
    """What answered, for reports: ``llama.cpp (<gguf file>)`` or ``torch (<quantization>)``."""
    from lorag.llm.llama_cpp import LlamaCppEngine

    if isinstance(llm, LlamaCppEngine):
        return f"llama.cpp ({llm.base.gguf.name})"
    return f"torch ({llm.base.settings.quantization})"


def _grounded_for(model: str) -> Path | None:
    """The shipped grounded adapter when ``model`` is its base (what answers when no adapter is chosen)."""
    from lorag.models import ModelNotAvailableError, resolve_model
    from lorag.rag.grounded import shipped_adapter_for

    try:
        return shipped_adapter_for(resolve_model(model))
    except (ModelNotAvailableError, OSError, ValueError):
        return None

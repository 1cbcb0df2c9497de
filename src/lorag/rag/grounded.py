"""The grounded-answer adapter shipped with lorag for its default chat model, and when it applies.

SmolLM2-135M-Instruct, left to itself, answers a RAG prompt with numbered lists, echoes of the instruction and
invented code. lorag trains a LoRA adapter on SQuAD questions in the exact RAG prompt format (the gold passage
among retrieved distractors; short answers that cite it as [n]; "the documents do not contain the answer" when the
gold passage is missing) and ships it inside the package (``benchmarks/grounded_adapter.py`` rebuilds it; its
``training_metadata.json`` records how). ``lorag ask``, ``create_rag_chain`` and ``create_query_engine`` answer with
it when the model is that base, unless told otherwise.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

#: The name the shipped adapter is registered under on an engine.
GROUNDED_ADAPTER = "lorag-grounded"
#: The model the shipped adapter was trained for (a lorag short name).
GROUNDED_BASE = "smollm2-135m-instruct"
GROUNDED_ADAPTER_DIR = Path(__file__).resolve().parents[1] / "adapters" / "grounded-smollm2-135m-instruct"


class GroundedAdapterError(ValueError):
    """The shipped adapter was asked for on a base it was not trained for."""


class GroundedPrecisionWarning(UserWarning):
    """The shipped adapter runs on a quantized base; it was trained on the full-precision one and answers better
    there."""


def shipped_adapter_for(base_path: str) -> Path | None:
    """The shipped grounded adapter if ``base_path`` (a resolved model directory) is the base it was trained for."""
    if not (GROUNDED_ADAPTER_DIR / "adapter_model.safetensors").is_file():
        return None
    from lorag.models import ModelNotAvailableError, resolve_model

    try:
        expected = resolve_model(GROUNDED_BASE)
    except (ModelNotAvailableError, OSError, ValueError):
        return None
    return GROUNDED_ADAPTER_DIR if Path(expected).resolve() == Path(base_path).resolve() else None


def check_grounded_base(engine: Any) -> None:
    """Refuse the shipped adapter on an engine whose base is not the one it was trained on (by content)."""
    metadata = json.loads((GROUNDED_ADAPTER_DIR / "training_metadata.json").read_text(encoding="utf-8"))
    recorded = metadata.get("base_model_fingerprint")
    if recorded != engine.base.fingerprint:
        raise GroundedAdapterError(
            f"lorag's grounded-answer adapter was trained for {GROUNDED_BASE} (fingerprint {recorded}); the loaded "
            f"base at {engine.base.path} has fingerprint {engine.base.fingerprint}. Answer without it "
            "(adapter 'none') or train one for this base with `lorag train-adapter`"
        )


def use_grounded_adapter(engine: Any) -> str | None:
    """Register the shipped adapter on ``engine`` when it fits its base; returns its name, or None when it does not
    apply (another base, or a package built without it)."""
    folder = shipped_adapter_for(engine.base.path)
    if folder is None:
        return None
    check_grounded_base(engine)
    engine.adapters.register(GROUNDED_ADAPTER, folder)
    from lorag.llm.adapters.validation import recorded_quantization
    from lorag.llm.loading import LoadedBase

    trained = recorded_quantization(folder)
    served = engine.base.settings.quantization if isinstance(engine.base, LoadedBase) else None
    if trained is not None and served is not None and served != trained:  # a llama.cpp engine serves the GGUF
        warnings.warn(
            f"lorag's grounded-answer adapter was trained on the base with quantization={trained!r} and runs here on "
            f"{served!r}; from full precision to NF4 its SQuAD dev F1 fell from 0.462 to 0.379 (benchmarks/results/"
            f"rag_defaults.md section 11): load the model with quantization={trained!r} for better answers",
            GroundedPrecisionWarning,
            stacklevel=2,
        )
    return GROUNDED_ADAPTER

"""Fields and engine access shared by ``ChatLorag`` and ``LoragLLM`` (all logic lives in ``lorag.llm``)."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from lorag.llm import LoragEngine

#: ``SamplingParams`` fields that are also fields here: defaults for every call, overridable per call.
SAMPLING_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "presence_penalty",
    "frequency_penalty",
    "min_tokens",
)
#: Keyword arguments a call may pass (``invoke(..., adapter="legal")``, ``.bind(...)``); anything else is an error.
CALL_OPTIONS = frozenset({"adapter", *SAMPLING_FIELDS})


class LoragParams(BaseModel):
    """Constructor fields: which base and adapters to serve, and default sampling settings."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str = "smollm2-135m-instruct"
    """lorag short name, local directory or hub id of the base model."""
    quantization: str = "nf4"
    """``nf4`` (default), ``fp4``, ``int8`` or ``none``."""
    compute_dtype: str | None = None
    """``float32`` / ``bfloat16`` / ``float16``; default float32 on CPU, bfloat16 on CUDA."""
    double_quant: bool = True
    device: str = "auto"
    adapters: dict[str, str] = Field(default_factory=dict)
    """Adapters to register: name -> peft adapter directory (loaded on first use)."""
    adapter: str | None = None
    """Default adapter for calls that do not name one (None = the base model)."""
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    repetition_penalty: float = 1.0
    """transformers' repetition penalty over prompt and output (> 0; 1.0 = off)."""
    no_repeat_ngram_size: int = 0
    """No n-gram of this size twice in prompt + output (0 = off)."""
    presence_penalty: float = 0.0
    """OpenAI's presence penalty over the output ([-2, 2]; 0 = off)."""
    frequency_penalty: float = 0.0
    """OpenAI's frequency penalty over the output ([-2, 2]; 0 = off)."""
    min_tokens: int = 0
    """End-of-sequence is suppressed until this many tokens are generated."""
    stop: list[str] | None = None
    max_resident_adapters: int = 8
    trust_remote_code: bool = False
    engine: LoragEngine | None = Field(default=None, exclude=True)
    """An existing engine to use instead of loading (or sharing) one from the fields above."""

    _engine_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def get_engine(self) -> LoragEngine:
        """The engine, loaded on first use and shared by every wrapper with the same base settings."""
        with self._engine_lock:
            if self.engine is None:
                self.engine = LoragEngine.shared(
                    self.model,
                    quantization=self.quantization,
                    compute_dtype=self.compute_dtype,
                    double_quant=self.double_quant,
                    device=self.device,
                    max_resident_adapters=self.max_resident_adapters,
                    trust_remote_code=self.trust_remote_code,
                )
            for name, path in self.adapters.items():
                self.engine.adapters.register(name, path)
            return self.engine

    def request_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Merge call options over the defaults; unknown options raise ``TypeError`` naming the valid ones."""
        unknown = set(kwargs) - CALL_OPTIONS
        if unknown:
            raise TypeError(f"unsupported option(s) {sorted(unknown)}; valid: {sorted(CALL_OPTIONS)} and stop")
        options: dict[str, Any] = {
            "adapter": self.adapter,
            **{name: getattr(self, name) for name in SAMPLING_FIELDS},
            "stop": stop if stop is not None else self.stop,
        }
        options.update(kwargs)
        options["stop"] = tuple(options["stop"] or ())
        return options

    def lorag_identity(self) -> dict[str, Any]:
        """Everything that changes outputs, for ``_identifying_params`` and cache keys."""
        return {
            "model": self.model,
            "quantization": self.quantization,
            "compute_dtype": self.compute_dtype,
            "double_quant": self.double_quant,
            "adapter": self.adapter,
            **{name: getattr(self, name) for name in SAMPLING_FIELDS},
        }

    def versioned(self, params: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Add the content version of the adapter a call will use, so a reloaded adapter never hits a stale cache."""
        adapter = kwargs.get("adapter", self.adapter)
        return {**params, "adapter": adapter, "adapter_version": self.get_engine().adapter_version(adapter)}

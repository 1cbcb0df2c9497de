"""Fields and engine access shared by ``ChatLorag`` and ``LoragLLM`` (all logic lives in ``lorag.llm``).

The fields themselves come from ``lorag.llm.options``, where the LlamaIndex ``LoragLLM`` takes them too.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import Field, PrivateAttr

from lorag.llm import LoragEngine
from lorag.llm.options import SAMPLING_OPTIONS, options_model

_Options = options_model()


class LoragParams(_Options):  # type: ignore[misc,valid-type]
    """Constructor fields: which base and adapters to serve, and default sampling settings (``lorag.llm.options``)."""

    engine: LoragEngine | None = Field(default=None, exclude=True)
    """An existing engine to use instead of loading (or sharing) one from the fields above."""

    _engine_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def get_engine(self) -> LoragEngine:
        """The engine, loaded on first use and shared by every wrapper with the same base settings."""
        with self._engine_lock:
            if self.engine is None:
                self.engine = self.engine_options().shared_engine()
            else:
                for name, path in self.adapters.items():
                    self.engine.adapters.register(name, path)
            return self.engine

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` under the model's own tokenizer (no special tokens added), so LangChain's
        ``get_num_tokens`` counts what the model reads instead of falling back to GPT-2's tokenizer."""
        return list(self.get_engine().tokenizer(text, add_special_tokens=False)["input_ids"])

    def request_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Merge call options over the defaults; unknown options raise ``TypeError`` naming the valid ones."""
        return self.call_options({**kwargs, **({"stop": stop} if stop is not None else {})})

    def lorag_identity(self) -> dict[str, Any]:
        """Everything that changes outputs, for ``_identifying_params`` and cache keys."""
        return {
            "model": self.model,
            "quantization": self.quantization,
            "compute_dtype": self.compute_dtype,
            "double_quant": self.double_quant,
            "lm_head_dtype": self.lm_head_dtype,
            "adapter": self.adapter,
            **{name: getattr(self, name) for name in SAMPLING_OPTIONS},
        }

    def versioned(self, params: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Add the content version of the adapter a call will use, so a reloaded adapter never hits a stale cache."""
        adapter = kwargs.get("adapter", self.adapter)
        return {**params, "adapter": adapter, "adapter_version": self.get_engine().adapter_version(adapter)}

"""The options every LLM wrapper takes, listed once, so the LangChain and LlamaIndex classes cannot drift apart.

``EngineOptions`` says which base to load, how, and which adapters to serve; ``SAMPLING_OPTIONS`` names the
``SamplingParams`` fields a wrapper takes as per-call defaults (their types, defaults and docs are read from
``SamplingParams``). ``options_model()`` turns both into pydantic fields that the wrappers inherit, with
the call-option merging they share; the core itself never imports pydantic.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lorag.llm.engine import LoragEngine
from lorag.llm.generation import SamplingParams
from lorag.llm.loading import LmHeadDtype, Quantization

#: ``SamplingParams`` fields a wrapper takes as defaults for every call (overridable per call). The grammar is set per
#: request by lorag itself, from a schema or tools.
SAMPLING_OPTIONS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "presence_penalty",
    "frequency_penalty",
    "min_tokens",
    "sequence_bias",
)
#: What one call may set: the adapter and the sampling options.
CALL_OPTIONS = ("adapter", *SAMPLING_OPTIONS)
#: Stop strings as the frameworks pass them (a list, or None for none); ``call_options`` makes the tuple.
_STOP_TYPE: Any = list[str] | None


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class EngineOptions:
    """Which base model a wrapper serves and how: what ``LoragEngine.shared`` is given, plus the adapters."""

    model: str = field(
        default="smollm2-135m-instruct", metadata=_doc("lorag short name, local directory or hub id of the base model.")
    )
    quantization: Quantization = field(default="nf4", metadata=_doc("nf4 (default), fp4, int8 or none."))
    compute_dtype: str | None = field(
        default=None, metadata=_doc("float32 / bfloat16 / float16; default float32 on CPU, bfloat16 on CUDA.")
    )
    double_quant: bool = field(default=True, metadata=_doc("Double-quantize the 4-bit scales."))
    lm_head_dtype: LmHeadDtype | None = field(
        default=None,
        metadata=_doc(
            "bfloat16 or int8 (CPU only): the output layer from a copy in that precision, for faster decoding "
            "(outputs not bit-identical); None keeps it as loaded."
        ),
    )
    device: str = field(default="auto", metadata=_doc("auto, cpu, cuda or cuda:N."))
    exact_batching: bool = field(
        default=False,
        metadata=_doc(
            "Give each request the output it would get alone, bit for bit, while others decode beside it (each "
            "weight product per row: no cost alone, less throughput under concurrent load)."
        ),
    )
    max_resident_adapters: int = field(
        default=8, metadata=_doc("Adapters kept loaded at once; the least recently used is evicted beyond it.")
    )
    trust_remote_code: bool = field(default=False, metadata=_doc("Allow code shipped with hub models to run."))
    adapters: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("Adapters to register: name -> peft adapter directory (loaded on first use)."),
    )
    adapter: str | None = field(
        default=None, metadata=_doc("Default adapter for calls that do not name one (None = the base model).")
    )

    def shared_engine(self) -> LoragEngine:
        """The engine for these settings, shared in this process with every wrapper that has the same base
        settings, with this wrapper's adapters registered on it."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        adapters = settings.pop("adapters")
        settings.pop("adapter")
        return LoragEngine.shared(adapters=dict(adapters), **settings)


def call_options(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Engine keyword arguments for one call: ``overrides`` over the wrapper's ``defaults`` (both keyed by
    ``CALL_OPTIONS``); an unknown option raises ``TypeError`` naming the valid ones."""
    unknown = set(overrides) - set(CALL_OPTIONS)
    if unknown:
        raise TypeError(f"unsupported option(s) {sorted(unknown)}; valid: {list(CALL_OPTIONS)}")
    options = {name: defaults[name] for name in CALL_OPTIONS}
    options.update(overrides)
    options["stop"] = tuple(options["stop"] or ())
    return options


def option_fields() -> dict[str, tuple[Any, dataclasses.Field[Any], str]]:
    """Every wrapper option as ``name -> (type, dataclass field with its default, description)``."""
    engine_types = typing.get_type_hints(EngineOptions)
    sampling_types = typing.get_type_hints(SamplingParams)
    sampling_docs = _attribute_docs(SamplingParams.__doc__ or "")
    fields = {f.name: (engine_types[f.name], f, f.metadata["doc"]) for f in dataclasses.fields(EngineOptions)}
    by_name = {f.name: f for f in dataclasses.fields(SamplingParams)}
    for name in SAMPLING_OPTIONS:
        fields[name] = (sampling_types[name], by_name[name], sampling_docs[name])
    fields["stop"] = (_STOP_TYPE, by_name["stop"], sampling_docs["stop"])
    return fields


def _attribute_docs(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section, continuation lines joined."""
    section = doc.split("Attributes:", 1)[1]
    entries = re.findall(r"^ {8}(\w+): (.*(?:\n {12}.*)*)", section, re.M)
    return {name: " ".join(text.split()) for name, text in entries}


def options_model() -> Any:
    """A pydantic model with every option as a field (the defaults validated as ``SamplingParams`` validates them)
    and the methods both wrappers use; a wrapper subclasses it beside its framework's base class."""
    from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

    class LoragOptions(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

        @model_validator(mode="after")
        def _check_sampling(self) -> Any:
            SamplingParams(**{name: getattr(self, name) for name in SAMPLING_OPTIONS})
            return self

        def engine_options(self) -> EngineOptions:
            return EngineOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EngineOptions)})

        def call_options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
            """Engine keyword arguments for one call (``lorag.llm.options.call_options`` over this object)."""
            return call_options({name: getattr(self, name) for name in CALL_OPTIONS}, overrides)

    fields: dict[str, Any] = {}
    for name, (annotation, spec, description) in option_fields().items():
        if spec.default_factory is not dataclasses.MISSING:
            fields[name] = (annotation, Field(default_factory=spec.default_factory, description=description))
        else:
            fields[name] = (annotation, Field(default=spec.default, description=description))
    return create_model("LoragOptions", __base__=LoragOptions, **fields)

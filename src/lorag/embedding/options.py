"""The options every embeddings wrapper takes, listed once, so LangChain's ``LoragEmbeddings`` and LlamaIndex's
``LoragEmbedding`` cannot drift apart.

``EmbedderOptions`` holds the ``Embedder`` settings a wrapper takes (defaults, descriptions, bounds) and is the one
place that builds the ``Embedder`` from them. ``options_model()`` turns them into pydantic fields the wrappers
inherit, under a framework's own names where its base class fixes them, with the embedding code they share; the core
itself never imports pydantic.
"""

from __future__ import annotations

import dataclasses
import operator
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lorag.embedding.as_floats import as_float_lists
from lorag.embedding.cache import EmbeddingCache
from lorag.embedding.encoder import Embedder
from lorag.embedding.onnx_backend import Backend, check_backend
from lorag.embedding.quantization import Precision, check_precision

#: Bounds an option may carry (``_doc(..., gt=0)``): pydantic enforces them on the wrappers' fields,
#: ``EmbedderOptions`` on itself.
_BOUNDS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">=")}


def _doc(text: str, **bounds: int) -> dict[str, Any]:
    return {"doc": text, "bounds": bounds}


@dataclass(frozen=True)
class EmbedderOptions:
    """The ``Embedder`` settings a wrapper takes, in a form a framework object can hold and serialise (a cache
    path rather than an ``EmbeddingCache``, calibration texts rather than arrays)."""

    model: str = field(
        default="minilm", metadata=_doc("lorag short name, local directory or hub id (lorag.models.resolve_model).")
    )
    device: str | None = field(default=None, metadata=_doc("torch device; None lets sentence-transformers choose."))
    batch_size: int = field(default=32, metadata=_doc("Texts per forward pass.", gt=0))
    normalize: bool = field(default=True, metadata=_doc("L2-normalise vectors (inner product = cosine)."))
    query_prompt: str | None = field(
        default=None, metadata=_doc('Prepended to queries (e.g. "query: " for E5-style models).')
    )
    document_prompt: str | None = field(default=None, metadata=_doc("Prepended to documents."))
    show_progress: bool = field(default=False, metadata=_doc("Progress bar while embedding many texts."))
    precision: Precision = field(
        default="float32",
        metadata=_doc(
            "float32; int8 codes (need calibration_texts) or binary signs, returned as floats: the codes' values, "
            "+1/-1 per bit (lorag.embedding.as_floats)."
        ),
    )
    calibration_texts: list[str] | None = field(
        default=None,
        metadata=_doc("Texts fixing the int8 scales (a sample of the corpus): of precision int8 and backend openvino."),
    )
    backend: Backend = field(
        default="torch",
        metadata=_doc(
            "torch; onnx: int8 ONNX Runtime encoder; onnx-fp32: torch's vectors, lower latency (lorag[onnx]); "
            "openvino: int8 calibrated on calibration_texts, fastest on CPU (lorag[openvino])."
        ),
    )
    cache_path: str | None = field(
        default=None,
        metadata=_doc("SQLite embedding cache file; texts embedded before with the same settings are not again."),
    )
    trust_remote_code: bool = field(default=False, metadata=_doc("Allow code shipped with hub models to run."))

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            for bound, limit in spec.metadata["bounds"].items():
                holds, symbol = _BOUNDS[bound]
                if not holds(getattr(self, spec.name), limit):
                    raise ValueError(f"{spec.name} must be {symbol} {limit}, got {getattr(self, spec.name)!r}")
        check_precision(self.precision)
        check_backend(self.backend)

    def build(self) -> Embedder:
        """The ``Embedder`` for these settings (loads the model; exports or calibrates the encoder if asked)."""
        return Embedder(
            self.model,
            device=self.device,
            batch_size=self.batch_size,
            normalize=self.normalize,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
            show_progress=self.show_progress,
            cache=EmbeddingCache(self.cache_path) if self.cache_path else None,
            trust_remote_code=self.trust_remote_code,
            precision=self.precision,
            calibration=self.calibration_texts,
            backend=self.backend,
        )


def option_fields() -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    """Every wrapper option as ``name -> (type, dataclass field with its default, description and bounds)``."""
    types = typing.get_type_hints(EmbedderOptions)
    return {spec.name: (types[spec.name], spec) for spec in dataclasses.fields(EmbedderOptions)}


def options_model(renamed: Mapping[str, str] | None = None, base: type | None = None) -> Any:
    """A pydantic model with every option as a field and the embedding both wrappers do; a wrapper subclasses it
    before its framework's base class.

    ``renamed`` maps an option to the field name a framework fixes (LlamaIndex's ``model_name``); where ``base``
    (that framework's pydantic base class) declares such a field, its constraints are kept (LlamaIndex caps
    ``embed_batch_size`` at 2048), so the wrapper accepts no value its framework refuses.
    """
    from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

    unknown = set(renamed or {}) - set(option_fields())
    if unknown:
        raise ValueError(f"cannot rename unknown option(s) {sorted(unknown)}")
    names = {name: (renamed or {}).get(name, name) for name in option_fields()}

    class LoragEmbedderOptions(BaseModel):
        model_config = ConfigDict(protected_namespaces=())

        #: Option name in ``EmbedderOptions`` -> this wrapper's field name.
        option_names: ClassVar[dict[str, str]] = names

        _embedder: Embedder | None = PrivateAttr(default=None)

        def model_post_init(self, context: Any, /) -> None:
            super().model_post_init(context)
            self._embedder = self.embedder_options().build()

        def embedder_options(self) -> EmbedderOptions:
            return EmbedderOptions(**{name: getattr(self, attr) for name, attr in names.items()})

        @property
        def embedder(self) -> Embedder:
            """The core ``lorag.embedding.Embedder`` (settings, dimension, fingerprint)."""
            assert self._embedder is not None  # built in model_post_init
            return self._embedder

        def float_lists(self, vectors: Any) -> list[list[float]]:
            """Vectors as the frameworks' stores take them (``lorag.embedding.as_floats``)."""
            return as_float_lists(vectors, self.embedder.precision, self.embedder.dimension)

    inherited = getattr(base, "model_fields", {})
    fields: dict[str, Any] = {}
    for name, (annotation, spec) in option_fields().items():
        attr = names[name]
        constraints = tuple(inherited[attr].metadata) if attr in inherited else ()
        if constraints:
            params = (annotation, *constraints)
            annotation = typing.Annotated[params]
        default: dict[str, Any] = (
            {"default": spec.default}
            if spec.default_factory is dataclasses.MISSING
            else {"default_factory": spec.default_factory}
        )
        fields[attr] = (annotation, Field(**default, description=spec.metadata["doc"], **spec.metadata["bounds"]))
    return create_model("LoragEmbedderOptions", __base__=LoragEmbedderOptions, **fields)

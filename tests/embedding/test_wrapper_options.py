"""One options list for both embeddings wrappers (``lorag.embedding.options``): LangChain's ``LoragEmbeddings`` and
LlamaIndex's ``LoragEmbedding`` take every ``Embedder`` option from it, with its defaults and descriptions
(LlamaIndex names two of them its own way), build the ``Embedder`` through it, and refuse bad values alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import ValidationError

from langchain_lorag import LoragEmbeddings
from llama_index.embeddings.lorag import LoragEmbedding
from lorag.embedding.options import EmbedderOptions, option_fields

WRAPPERS = [LoragEmbeddings, LoragEmbedding]
#: Option -> LlamaIndex field, where ``BaseEmbedding`` fixes the name (public names: a contract).
LLAMA_INDEX_NAMES = {"model": "model_name", "batch_size": "embed_batch_size"}


def field_name(wrapper: type, option: str) -> str:
    return LLAMA_INDEX_NAMES.get(option, option) if wrapper is LoragEmbedding else option


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.__name__)
def test_every_option_comes_from_the_core(wrapper: type) -> None:
    fields = wrapper.model_fields
    assert wrapper.option_names == {name: field_name(wrapper, name) for name in option_fields()}
    for name, (_, spec) in option_fields().items():
        field = fields[field_name(wrapper, name)]
        assert field.description == spec.metadata["doc"] and field.description, name
        assert field.get_default(call_default_factory=True) == spec.default, name
    own = set(BaseEmbedding.model_fields) - set(LLAMA_INDEX_NAMES.values()) if wrapper is LoragEmbedding else set()
    assert set(fields) == set(wrapper.option_names.values()) | own  # nothing declared beside the core's


def test_defaults_are_the_embedders() -> None:
    assert {f.name: f.default for f in dataclasses.fields(EmbedderOptions)} == {
        "model": "minilm",
        "device": None,
        "batch_size": 32,
        "normalize": True,
        "query_prompt": None,
        "document_prompt": None,
        "show_progress": False,
        "precision": "float32",
        "calibration_texts": None,
        "backend": "torch",
        "cache_path": None,
        "trust_remote_code": False,
    }


def test_options_reach_the_embedder_the_same_way(tiny_st_dir: Path, tmp_path: Path) -> None:
    options = EmbedderOptions(
        model=str(tiny_st_dir),
        device="cpu",
        batch_size=3,
        normalize=False,
        query_prompt="query: ",
        document_prompt="passage: ",
        precision="binary",
        cache_path=str(tmp_path / "cache.sqlite"),
    )
    values = dataclasses.asdict(options)
    wrappers = [w(**{field_name(w, name): value for name, value in values.items()}) for w in WRAPPERS]
    for wrapper in wrappers:
        assert wrapper.embedder_options() == options
        embedder = wrapper.embedder
        assert (embedder.batch_size, embedder.normalize, embedder.cache is not None) == (3, False, True)
    assert wrappers[0].embedder.settings() == wrappers[1].embedder.settings() == options.build().settings()
    assert wrappers[0].embed_query("a question") == wrappers[1].get_query_embedding("a question")


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("precision", "int4"), ("backend", "tensorrt")])
def test_bad_values_are_refused_naming_the_field(wrapper: type, option: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field_name(wrapper, option)):
        wrapper(**{field_name(wrapper, option): value})


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("precision", "int4"), ("backend", "tensorrt")])
def test_the_core_options_refuse_them_too(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{option}|{value}"):
        EmbedderOptions(**{option: value})  # type: ignore[arg-type]


def test_llamaindex_keeps_its_batch_cap() -> None:
    with pytest.raises(ValidationError, match="embed_batch_size"):
        LoragEmbedding(embed_batch_size=4096)

"""ChatLorag and LoragLLM serialise with LangChain's ``dumpd`` / ``load``: settings kept, the engine left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.load import dumpd, dumps, load

from langchain_lorag import ChatLorag, LoragLLM


@pytest.mark.parametrize("cls", [ChatLorag, LoragLLM])
def test_settings_round_trip(cls: type) -> None:
    wrapper = cls(quantization="int8", adapters={"legal": "/adapters/legal"}, temperature=0.3, max_tokens=12)
    payload = dumpd(wrapper)
    assert payload["id"][0] == "langchain_lorag" and payload["id"][-1] == cls.__name__
    back = load(payload, valid_namespaces=["langchain_lorag"], allowed_objects=[cls])
    assert type(back) is cls
    assert (back.quantization, back.adapters, back.temperature, back.max_tokens) == (
        "int8",
        {"legal": "/adapters/legal"},
        0.3,
        12,
    )


def test_a_loaded_engine_is_not_serialised(tiny_llm_dir: Path) -> None:
    from lorag.llm import LoragEngine

    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu")
    try:
        text = dumps(ChatLorag(model=str(tiny_llm_dir), quantization="none", engine=engine))
    finally:
        engine.close()
    kwargs = json.loads(text)["kwargs"]
    assert "engine" not in kwargs and kwargs["model"] == str(tiny_llm_dir)

"""One options list for every LLM wrapper (``lorag.llm.options``): the LangChain and LlamaIndex classes take the
same options with the same defaults, forward the loading ones to the engine, and refuse bad values and unknown call
options the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from langchain_lorag import ChatLorag
from langchain_lorag import LoragLLM as LangChainLLM
from llama_index.llms.lorag import LoragLLM as LlamaIndexLLM
from lorag.llm import SamplingParams
from lorag.llm.options import CALL_OPTIONS, SAMPLING_OPTIONS, EngineOptions, option_fields

WRAPPERS = [ChatLorag, LangChainLLM, LlamaIndexLLM]


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: f"{w.__module__}.{w.__name__}")
def test_every_wrapper_has_every_option_with_its_description(wrapper: type) -> None:
    fields = wrapper.model_fields
    for name, (_, spec, description) in option_fields().items():
        assert name in fields, f"{wrapper.__name__} lacks {name}"
        assert fields[name].description == description and description
        default = fields[name].get_default(call_default_factory=True)
        expected = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        assert default == expected, name


def test_sampling_defaults_are_samplingparams_defaults() -> None:
    defaults = SamplingParams()
    llm = LlamaIndexLLM()
    for name in SAMPLING_OPTIONS:
        value = getattr(llm, name)
        assert (tuple(value or ()) if name == "stop" else value) == getattr(defaults, name), name
    assert set(option_fields()) == {f.name for f in dataclasses.fields(EngineOptions)} | set(SAMPLING_OPTIONS)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.__name__)
def test_loading_options_reach_the_engine(wrapper: type, tiny_llm_dir: Path) -> None:
    llm = wrapper(model=str(tiny_llm_dir), quantization="none", device="cpu", max_resident_adapters=3)
    engine = llm.engine if isinstance(llm, LlamaIndexLLM) else llm.get_engine()
    assert engine.adapters.max_resident == 3
    lowered = wrapper(model=str(tiny_llm_dir), quantization="none", device="cpu", lm_head_dtype="bfloat16")
    lowered_engine = lowered.engine if isinstance(lowered, LlamaIndexLLM) else lowered.get_engine()
    assert lowered_engine is not engine and lowered_engine.base.settings.lm_head_dtype == "bfloat16"
    assert engine.scheduler.exact is False
    exact = wrapper(model=str(tiny_llm_dir), quantization="none", device="cpu", exact_batching=True)
    exact_engine = exact.engine if isinstance(exact, LlamaIndexLLM) else exact.get_engine()
    assert exact_engine is not engine and exact_engine.scheduler.exact is True
    assert (
        engine
        is LangChainLLM(
            model=str(tiny_llm_dir), quantization="none", device="cpu", max_resident_adapters=3
        ).get_engine()
    )  # one base in memory for the same settings, whichever framework asked


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize(("option", "value"), [("top_p", 0.0), ("presence_penalty", 3.0), ("max_tokens", 0)])
def test_bad_defaults_are_refused_at_construction_naming_the_option(wrapper: type, option: str, value: float) -> None:
    with pytest.raises(ValidationError, match=option):
        wrapper(**{option: value})


def test_call_options_are_the_same_in_both_frameworks() -> None:
    chat, llama = ChatLorag(max_tokens=7, stop=["\n"]), LlamaIndexLLM(max_tokens=7, stop=["\n"])
    assert set(chat.request_options(None, {})) == set(CALL_OPTIONS)
    assert chat.request_options(None, {"top_k": 5}) == llama.call_options({"top_k": 5})
    assert chat.request_options(["."], {})["stop"] == (".",)
    for call in (lambda: chat.request_options(None, {"beam_width": 2}), lambda: llama.call_options({"beam_width": 2})):
        with pytest.raises(TypeError, match=r"unsupported option\(s\) \['beam_width'\]"):
            call()

"""``tool_choice="auto"`` with a calibrated rule (``lorag.llm.auto_calls``): the score is the model's own
log-probability of the opening tag, the words a message shares with a tool are counted as documented, a rule that
says call forces one valid call, otherwise the model writes freely, and a base without a calibration keeps plain
``auto``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.llm import LoragEngine, Tool
from lorag.llm.adapters import BASE_ADAPTER
from lorag.llm.auto_calls import (
    AUTO_CALL_RULES,
    CALIBRATED,
    AutoCallRule,
    auto_call_rule,
    continuation_logprob,
    opening_ids,
    shared_tool_words,
    tool_name_coverage,
)
from lorag.llm.generation import encode_prompt
from lorag.llm.tools import OPEN, prepare_tools

pytest.importorskip("llguidance")

WEATHER = Tool(
    "get_weather",
    "Weather at a place.",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]},
)
CHAT = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def engine(long_engine: LoragEngine) -> LoragEngine:
    return long_engine


def test_rules_resolve_and_bad_values_are_named():
    assert auto_call_rule(CALIBRATED, "no-such-base") is None
    assert auto_call_rule(None, "any") is None
    at_least = auto_call_rule(-3, "any")
    assert at_least == AutoCallRule.min_logprob(-3.0)
    assert at_least.calls(-3.0, 0) and not at_least.calls(-3.01, 99)  # words do not count in a threshold alone
    own = AutoCallRule(1.0, 0.5, 2.0)
    assert auto_call_rule(own, "any") is own
    assert own.calls(-3.0, 2) and not own.calls(-3.0, 1)  # -3 + 1 + 2 >= 0; -3 + 0.5 + 2 < 0
    named = AutoCallRule(1.0, 0.5, 2.0, name_coverage_weight=1.0)
    assert named.calls(-3.0, 1, 0.5) and not named.calls(-3.0, 1, 0.4)  # -3 + 0.5 + 0.5 + 2 >= 0; 0.4 falls short
    assert own.calls(-3.0, 2, 0.0) == own.calls(-3.0, 2)  # coverage weighs nothing unless a rule gives it weight
    for fingerprint, rule in AUTO_CALL_RULES.items():
        assert auto_call_rule(CALIBRATED, fingerprint) is rule
        assert rule.logprob_weight > 0 and rule.shared_words_weight > 0  # more likely tag, more shared words: call
        assert rule.name_coverage_weight >= 0  # more of a tool's name said: not less likely to call
    for bad in ("always", True):
        with pytest.raises(ValueError, match="auto_call_min_logprob must be"):
            auto_call_rule(bad, "any")


def test_shared_words_are_content_words_of_the_last_message_against_the_best_tool():
    search = Tool("searchDocs", "Search the documentation pages.", {"type": "object", "properties": {}})
    factorial = Tool("math.factorial", "Factorial of a number.", {"type": "object", "properties": {}})
    chat = [{"role": "user", "content": "Search the weather docs"}, {"role": "assistant", "content": "ok"}]
    assert shared_tool_words(CHAT, [WEATHER]) == 1  # "weather"; "what", "is", "the", "in" are stopwords
    assert shared_tool_words([*chat, *CHAT], [WEATHER, search]) == 1  # the last message only
    assert shared_tool_words([{"role": "user", "content": "search docs about weather"}], [WEATHER, search]) == 2
    assert shared_tool_words([{"role": "user", "content": "Factorials of numbers"}], [factorial]) == 2  # stems
    parts = [{"type": "text", "text": "the factorial"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert shared_tool_words([{"role": "user", "content": parts}], [factorial]) == 1
    assert shared_tool_words(CHAT, []) == 0


def test_name_coverage_is_the_largest_share_of_a_tool_names_words_in_the_last_message():
    search = Tool("searchDocs", "Weather, forecasts and the weather of Paris.", {"type": "object", "properties": {}})
    factorial = Tool("math.factorial", "", {"type": "object", "properties": {}})
    assert tool_name_coverage(CHAT, [WEATHER]) == 0.5  # "weather" of get_weather; "get" is not said
    assert tool_name_coverage(CHAT, [search]) == 0.0  # the description does not count, however close
    assert tool_name_coverage([{"role": "user", "content": "search the docs"}], [WEATHER, search]) == 1.0
    assert tool_name_coverage([{"role": "user", "content": "the factorial of 5"}], [factorial]) == 0.5
    assert tool_name_coverage(CHAT, [Tool("_", "", {"type": "object", "properties": {}})]) == 0.0  # no words
    assert tool_name_coverage(CHAT, []) == 0.0


def test_the_score_is_the_teacher_forced_log_probability_of_the_tag(engine: LoragEngine):
    import torch

    prompt = encode_prompt(engine.tokenizer, None, CHAT, prepare_tools([WEATHER]))
    tag = opening_ids(engine.tokenizer, OPEN)
    score = continuation_logprob(engine.scheduler.registry, prompt, tag, BASE_ADAPTER)
    model, expected, ids = engine.scheduler.registry.base.model, 0.0, list(prompt)
    with torch.inference_mode():
        for token in tag:  # one token at a time, each from the full forward pass of the ids so far
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
            expected += float(torch.log_softmax(logits, -1)[token])
            ids.append(token)
    assert score == pytest.approx(expected, abs=1e-4)
    assert score < 0


def test_a_score_at_the_threshold_forces_one_valid_call_and_below_it_the_model_writes_freely(engine: LoragEngine):
    prompt = encode_prompt(engine.tokenizer, None, CHAT, prepare_tools([WEATHER]))
    score = continuation_logprob(engine.scheduler.registry, prompt, opening_ids(engine.tokenizer, OPEN), BASE_ADAPTER)
    forced = engine.generate(messages=CHAT, tools=[WEATHER], auto_call_min_logprob=score, max_tokens=120)
    assert [call.name for call in forced.tool_reply.tool_calls] == ["get_weather"]
    assert isinstance(forced.tool_reply.tool_calls[0].arguments["city"], str)
    free = engine.generate(messages=CHAT, tools=[WEATHER], auto_call_min_logprob=score + 1e-3, max_tokens=120)
    plain = engine.generate(messages=CHAT, tools=[WEATHER], auto_call_min_logprob=None, max_tokens=120)
    assert free.text == plain.text  # below the threshold: exactly plain auto
    assert not free.tool_reply.tool_calls  # the random tiny model does not open a call itself
    uncalibrated = engine.generate(messages=CHAT, tools=[WEATHER], max_tokens=120)
    assert uncalibrated.text == plain.text  # the tiny base has no calibration: plain auto by default


def test_after_a_tool_result_the_model_chooses_itself(engine: LoragEngine):
    """An agent is never pushed into another call: a rule decides only turns that answer the user."""
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    chat = [
        *CHAT,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
    ]
    always = engine.generate(messages=chat, tools=[WEATHER], auto_call_min_logprob=-1e9, max_tokens=60)
    plain = engine.generate(messages=chat, tools=[WEATHER], auto_call_min_logprob=None, max_tokens=60)
    assert always.text == plain.text and not always.tool_reply.tool_calls


def test_a_prompt_over_the_context_is_refused_without_a_scoring_pass(
    engine: LoragEngine, monkeypatch: pytest.MonkeyPatch
):
    import lorag.llm.engine

    def fail(*args, **kwargs):
        raise AssertionError("scored a prompt the engine refuses")

    monkeypatch.setattr(lorag.llm.engine, "continuation_logprob", fail)
    long_chat = [{"role": "user", "content": "weather " * engine.scheduler.max_length}]
    with pytest.raises(ValueError, match="the model's context is"):
        engine.generate(messages=long_chat, tools=[WEATHER], auto_call_min_logprob=-1e9)


def test_chat_lorag_binds_the_threshold(engine: LoragEngine):
    from langchain_lorag import ChatLorag

    chat = ChatLorag(engine=engine, max_tokens=120)
    forced = chat.bind_tools([WEATHER.to_openai()], auto_call_min_logprob=-1e9).invoke(CHAT[0]["content"])
    assert [call["name"] for call in forced.tool_calls] == ["get_weather"]
    assert not chat.bind_tools([WEATHER.to_openai()], auto_call_min_logprob=None).invoke(CHAT[0]["content"]).tool_calls


def test_loraglm_passes_the_threshold_too(long_llm_dir: Path):
    from llama_index.core.tools import FunctionTool
    from pydantic import BaseModel, Field

    from llama_index.llms.lorag import LoragLLM

    class Place(BaseModel):
        city: str = Field(max_length=8)

    def get_weather(city: str) -> str:
        """Weather at a place."""
        return "sunny"

    llm = LoragLLM(model=str(long_llm_dir), quantization="none", device="cpu", max_tokens=120)
    tool = FunctionTool.from_defaults(fn=get_weather, fn_schema=Place)
    forced = llm.chat_with_tools([tool], CHAT[0]["content"], auto_call_min_logprob=-1e9)
    assert [call.tool_name for call in llm.get_tool_calls_from_response(forced)] == ["get_weather"]
    plain = llm.chat_with_tools([tool], CHAT[0]["content"], auto_call_min_logprob=None)
    assert not llm.get_tool_calls_from_response(plain, error_on_no_tool_call=False)


FACTORIAL = Tool(  # BFCL v4 simple_python_1's function (Apache-2.0), its dots left out of the name
    "math_factorial",
    "Calculate the factorial of a given number.",
    {"type": "object", "properties": {"number": {"type": "integer"}}, "required": ["number"]},
)


@pytest.mark.real_model
def test_the_calibrated_default_calls_where_smollm2_leans_to_a_call_and_not_for_chat():
    """SmolLM2-135M never opens this call greedily; its calibrated rule makes ``auto`` call it, and still leaves a
    request that needs no function to prose."""
    engine = LoragEngine("smollm2-135m-instruct", quantization="nf4", device="cpu")
    try:
        assert engine.base.fingerprint in AUTO_CALL_RULES
        ask = [{"role": "user", "content": "Calculate the factorial of 5 using math functions."}]
        plain = engine.generate(messages=ask, tools=[FACTORIAL], auto_call_min_logprob=None, max_tokens=48)
        called = engine.generate(messages=ask, tools=[FACTORIAL], max_tokens=48)
        assert not plain.tool_reply.tool_calls
        assert [(c.name, c.arguments) for c in called.tool_reply.tool_calls] == [("math_factorial", {"number": 5})]
        chat = [{"role": "user", "content": "Write a haiku about autumn."}]
        assert not engine.generate(messages=chat, tools=[FACTORIAL], max_tokens=24).tool_reply.tool_calls
    finally:
        engine.close()

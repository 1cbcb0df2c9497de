"""Tool calls: tools through the chat template, calls read back (whole or streamed), grammar-forced calls that
always validate, and LangChain's tool loop, structured output and token counts on the tiny model."""

from __future__ import annotations

import itertools
import json
from typing import Annotated, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_lorag import ChatLorag
from langchain_lorag.messages import to_chat
from lorag.llm import GrammarError, LoragEngine, Tool, ToolCallStream, parse_tool_calls
from lorag.llm.generation import encode_prompt
from lorag.llm.tools import FALLBACK_TOOLS_PROMPT, prepare_tools, render_chat

pytest.importorskip("llguidance")

WEATHER = Tool(
    "get_weather",
    "Weather at a place.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 8},
            "unit": {"enum": ["C", "F"]},
        },
        "required": ["city"],
    },
)
ADD = Tool(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer", "minimum": -99, "maximum": 99}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
NOW = Tool("now", "The time.")
CHAT = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def engine(long_engine: LoragEngine) -> LoragEngine:
    return long_engine


@pytest.fixture(scope="module")
def chat(engine: LoragEngine) -> ChatLorag:
    return ChatLorag(engine=engine, max_tokens=120)


# ---------------------------------------------------------------------------------------------- tools and choice


def test_tools_and_choice_are_checked():
    other_weather = Tool("get_weather", "", {"type": "object", "properties": {"zip": {"type": "string"}}})
    with pytest.raises(ValueError, match="two different tools are named 'get_weather'"):
        prepare_tools([WEATHER, other_weather])
    with pytest.raises(ValueError, match="tool_choice 'add' names no tool"):
        prepare_tools([WEATHER], "add")
    with pytest.raises(ValueError, match="needs at least one tool"):
        prepare_tools([], "required")
    with pytest.raises(ValueError, match="non-empty name"):
        prepare_tools([{"type": "function", "function": {"description": "no name"}}])


def test_the_same_tool_given_twice_is_one_tool():
    titled = json.loads(json.dumps(WEATHER.to_openai()))
    titled["function"]["parameters"]["properties"]["city"]["title"] = "City"
    assert prepare_tools([WEATHER, titled]) == (WEATHER,)


# ---------------------------------------------------------------------------------------------- reading calls


def _block(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


PIECES = st.one_of(
    st.text(alphabet="ab <>/_tolc\n", max_size=12),
    st.builds(
        _block, st.sampled_from(["add", "now"]), st.dictionaries(st.sampled_from("ab"), st.integers(), max_size=2)
    ),
    st.just("<tool_call>{not json</tool_call>"),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(PIECES, max_size=5), cuts=st.lists(st.integers(0, 400), max_size=8), tail=st.booleans())
def test_streamed_reading_equals_reading_the_whole_reply(pieces: list[str], cuts: list[int], tail: bool):
    text = "".join(pieces) + ("<tool_call>\n{" if tail else "")
    whole = parse_tool_calls(text)
    stream = ToolCallStream()
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    parts = [stream.push(text[a:b]) for a, b in itertools.pairwise(bounds)] + [stream.finish()]
    assert "".join(p.content for p in parts) == whole.content
    calls = [(c.name, c.arguments) for p in parts for c in p.tool_calls]
    assert calls == [(c.name, c.arguments) for c in whole.tool_calls]
    assert [c.text for p in parts for c in p.invalid_tool_calls] == [c.text for c in whole.invalid_tool_calls]


def test_reading_the_forms_models_write():
    reply = parse_tool_calls(
        'Sure.\n<tool_call>\n[{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "now", "parameters": {}}]\n'
        '</tool_call><tool_call>{"name": "add", "arguments": "{\\"a\\": 5}"}</tool_call>'
        '<tool_call>{"name": "add", "arguments": [1]}</tool_call><tool_call>{"name": "add", "arg'
    )
    assert reply.content == "Sure.\n"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("add", {"a": 1, "b": 2}),
        ("now", {}),
        ("add", {"a": 5}),
    ]
    assert [e.error for e in reply.invalid_tool_calls] == [
        "the arguments of 'add' are not a JSON object",
        "the reply ended inside a <tool_call> block",
    ]
    assert len({c.id for c in reply.tool_calls}) == 3


# ---------------------------------------------------------------------------------------------- rendering


HISTORY = [
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_7", "content": '{"temp": 3}'},
]


def test_the_fallback_format_for_a_template_without_tools(engine: LoragEngine):
    text = render_chat(engine.tokenizer, HISTORY, [WEATHER])
    system = FALLBACK_TOOLS_PROMPT.format(tools=json.dumps([WEATHER.to_openai()]))
    assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>")
    call = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    assert f"<|im_start|>assistant\n<tool_call>[\n{call}\n]</tool_call><|im_end|>" in text
    response = '{"id": "call_7", "name": "get_weather", "content": {"temp": 3}}'  # the name found from the call's id
    assert f"<|im_start|>user\n<tool_response>\n{response}\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_a_template_with_a_tools_section_renders_them_itself(engine: LoragEngine, monkeypatch: pytest.MonkeyPatch):
    template = (
        "{% if tools %}TOOLS {% for t in tools %}{{ t.function.name }};{% endfor %}|{% endif %}"
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}"
        "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} {{ c.function.arguments.city }} {{ c.id }}"
        "{% endfor %}"
        "{% if m.tool_call_id %} FOR {{ m.tool_call_id }}{% endif %}|{% endfor %}[assistant]"
    )
    monkeypatch.setattr(engine.tokenizer, "chat_template", template)
    text = render_chat(engine.tokenizer, HISTORY, [WEATHER, ADD])
    assert text == (
        "TOOLS get_weather;add;|[user]Weather in Oslo?|[assistant]CALL get_weather Oslo call_7|"
        '[tool]{"temp": 3} FOR call_7|[assistant]'
    )


# ---------------------------------------------------------------------------------------------- constrained calls


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.sampled_from(["required", "get_weather", "add", "now"]), seed=st.integers(0, 2**16))
def test_a_forced_call_always_parses_and_its_arguments_validate(engine: LoragEngine, choice: str, seed: int):
    tools = [WEATHER, ADD, NOW]
    result = engine.generate(messages=CHAT, tools=tools, tool_choice=choice, temperature=1.0, seed=seed, max_tokens=200)
    assert result.finish_reason == "stop"
    reply = result.tool_reply
    assert reply is not None and reply.content == "" and not reply.invalid_tool_calls
    (call,) = reply.tool_calls
    assert choice in ("required", call.name)
    jsonschema.validate(call.arguments, next(t for t in tools if t.name == call.name).parameters)


def test_a_forced_call_resolves_refs_within_its_own_parameters(engine: LoragEngine):
    """Each tool's parameters stay the root of their own schema, so pydantic's ``#/$defs/...`` refs resolve."""
    place = {"type": "object", "properties": {"lat": {"type": "integer", "minimum": -90, "maximum": 90}}}
    route = Tool(
        "route",
        "A route between two places.",
        {
            "$defs": {"Place": place},
            "type": "object",
            "properties": {"start": {"$ref": "#/$defs/Place"}, "end": {"$ref": "#/$defs/Place"}},
            "required": ["start", "end"],
        },
    )
    result = engine.generate(messages=CHAT, tools=[route, ADD], tool_choice="route", max_tokens=120)
    (call,) = result.tool_reply.tool_calls
    jsonschema.validate(call.arguments, route.parameters)
    assert set(call.arguments) == {"start", "end"}


def _bias_towards_a_call(engine: LoragEngine) -> tuple:
    """sequence_bias that makes the model open a ``<tool_call>`` block itself, token by token."""
    ids = engine.tokenizer("<tool_call>", add_special_tokens=False)["input_ids"]
    return tuple((tuple(ids[: i + 1]), 100.0 * (i + 1)) for i in range(len(ids)))  # the next tag token wins


def test_under_auto_a_call_the_model_starts_is_a_valid_call(engine: LoragEngine):
    """Pushed to open ``<tool_call>`` blocks, the random model writes junk in them when free; constrained, every
    block it completes holds valid calls (only a block cut by max_tokens can be invalid)."""
    bias = _bias_towards_a_call(engine)
    free = engine.generate(
        messages=CHAT,
        tools=[WEATHER],
        constrain_tools=False,
        sequence_bias=bias,
        max_tokens=40,
        temperature=1.0,
        seed=1,
    )
    assert free.text.startswith("<tool_call>") and not free.tool_reply.tool_calls
    calls = []
    for seed in range(4):
        result = engine.generate(
            messages=CHAT, tools=[WEATHER], sequence_bias=bias, max_tokens=150, temperature=1.0, seed=seed
        )
        reply = result.tool_reply
        assert result.text.startswith("<tool_call>")
        cut = [bad for bad in reply.invalid_tool_calls if bad.error.startswith("the reply ended")]
        assert reply.invalid_tool_calls == cut and (not cut or result.finish_reason == "length")
        calls += reply.tool_calls
    assert calls
    for call in calls:
        jsonschema.validate(call.arguments, WEATHER.parameters)


def test_tools_with_a_grammar_or_a_plain_prompt_are_refused(engine: LoragEngine):
    from lorag.llm import Grammar

    with pytest.raises(ValueError, match="either tools or a grammar"):
        engine.generate(messages=CHAT, tools=[ADD], grammar=Grammar.json_object())
    with pytest.raises(ValueError, match="give messages="):
        engine.generate("plain text", tools=[ADD])
    with pytest.raises(GrammarError, match="uniqueItems"):
        engine.generate(messages=CHAT, tools=[Tool("f", "", {"type": "array", "uniqueItems": True})])


# ---------------------------------------------------------------------------------------------- LangChain


@tool
def add(a: Annotated[int, Field(ge=-99, le=99)], b: Annotated[int, Field(ge=-99, le=99)]) -> int:
    """Add two integers."""
    return a + b


def test_tool_call_then_tool_message_then_final_answer(chat: ChatLorag, engine: LoragEngine):
    with_tools = chat.bind_tools([add], tool_choice="any")
    question = HumanMessage("What is 2 + 3?")
    called = with_tools.invoke([question])
    (call,) = called.tool_calls
    assert call["name"] == "add" and call["id"]
    result = ToolMessage(str(add.invoke(call["args"])), tool_call_id=call["id"])
    history = [question, called, result]
    final = chat.bind_tools([add]).invoke(history)
    assert isinstance(final, AIMessage) and isinstance(final.content, str)
    prompt = render_chat(engine.tokenizer, to_chat(history), prepare_tools([_spec(add)]))
    assert f'"id": "{call["id"]}", "name": "add", "content": {result.content}' in prompt
    assert final.usage_metadata["input_tokens"] == len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def _spec(lc_tool) -> dict:
    return convert_to_openai_tool(lc_tool)


def test_streamed_tool_calls_add_up_to_the_invoked_ones(chat: ChatLorag):
    with_tools = chat.bind_tools([add, _spec(add)], tool_choice="add")  # the same tool twice is one tool
    invoked = with_tools.invoke("2 + 3?")
    full = None
    for chunk in with_tools.stream("2 + 3?"):
        full = chunk if full is None else full + chunk
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [(c["name"], c["args"]) for c in invoked.tool_calls]
    assert full.content == invoked.content == ""
    assert full.response_metadata["finish_reason"] == "stop"
    streamed_invoke = ChatLorag(engine=chat.get_engine(), max_tokens=120, streaming=True)
    via_stream = streamed_invoke.bind_tools([add], tool_choice="add").invoke("2 + 3?")
    assert [c["args"] for c in via_stream.tool_calls] == [c["args"] for c in invoked.tool_calls]


async def test_async_tool_calls(chat: ChatLorag):
    with_tools = chat.bind_tools([add], tool_choice={"type": "function", "function": {"name": "add"}})
    invoked = await with_tools.ainvoke("2 + 3?")
    full = None
    async for chunk in with_tools.astream("2 + 3?"):
        full = chunk if full is None else full + chunk
    assert invoked.tool_calls[0]["name"] == "add"
    assert [c["args"] for c in full.tool_calls] == [c["args"] for c in invoked.tool_calls]


def test_bind_tools_refuses_bad_input(chat: ChatLorag):
    other_add = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(ValueError, match="two different tools are named 'add'"):
        chat.bind_tools([add, other_add])
    with pytest.raises(ValueError, match="tool_choice 'multiply' names no tool"):
        chat.bind_tools([add], tool_choice="multiply")


class Person(BaseModel):
    """A person."""

    name: str = Field(max_length=8)
    age: int = Field(ge=0, le=120)


class Mood(TypedDict):
    """LangChain's TypedDict form (descriptions in Annotated); its values are bounded by their types."""

    mood: Annotated[Literal["happy", "sad"], ..., "how they feel"]
    awake: Annotated[bool, ..., "whether they are awake"]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("kind", ["pydantic", "typeddict", "json_schema"])
def test_structured_output_validates(chat: ChatLorag, method: str, kind: str):
    schema = {"pydantic": Person, "typeddict": Mood, "json_schema": Person.model_json_schema()}[kind]
    result = chat.with_structured_output(schema, method=method).invoke("Ada Lovelace, 36")
    if kind == "pydantic":
        assert isinstance(result, Person)
    else:
        jsonschema.validate(result, convert_to_json_schema(schema))


def test_structured_output_include_raw_and_json_mode(chat: ChatLorag):
    out = chat.with_structured_output(Person, include_raw=True).invoke("Ada Lovelace, 36")
    assert isinstance(out["parsed"], Person) and out["parsing_error"] is None
    assert json.loads(out["raw"].content) == out["parsed"].model_dump()
    loose = chat.with_structured_output(Person.model_json_schema(), method="json_mode", include_raw=True)
    out = loose.invoke("Ada Lovelace, 36")
    assert out["raw"].content.startswith("{")
    if out["raw"].response_metadata["finish_reason"] == "stop":
        assert isinstance(out["parsed"], dict)
    else:  # any object is allowed, so the random model may write past max_tokens: then it is reported, not raised
        assert out["parsing_error"] is not None


def test_structured_output_refuses_what_cannot_be_enforced(chat: ChatLorag):
    schema = {"title": "T", "type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(GrammarError, match="uniqueItems"):
        chat.with_structured_output(schema).invoke("tags?")
    with pytest.raises(ValueError, match="method must be"):
        chat.with_structured_output(Person, method="xml")  # type: ignore[arg-type]


def test_token_counts_come_from_the_model_tokenizer(chat: ChatLorag, engine: LoragEngine, recwarn):
    text = "Retrieval augmented generation answers questions."
    assert chat.get_num_tokens(text) == len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
    messages = [SystemMessage("Be brief."), HumanMessage("Hello there")]
    plain = chat.get_num_tokens_from_messages(messages)
    assert plain == len(encode_prompt(engine.tokenizer, messages=to_chat(messages)))
    with_tools = chat.get_num_tokens_from_messages(messages, tools=[add])
    assert with_tools == len(
        encode_prompt(engine.tokenizer, messages=to_chat(messages), tools=prepare_tools([_spec(add)]))
    )
    assert with_tools > plain
    assert not [w for w in recwarn if "GPT-2" in str(w.message) or "tool schemas" in str(w.message)]


def test_the_completion_llm_counts_with_the_model_tokenizer_too(engine: LoragEngine, recwarn):
    from langchain_lorag import LoragLLM

    text = "BM25 ranks documents by term frequency."
    assert LoragLLM(engine=engine).get_num_tokens(text) == len(
        engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    )
    assert not [w for w in recwarn if "GPT-2" in str(w.message)]

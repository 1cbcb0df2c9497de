"""LlamaIndex ``LoragLLM`` as a ``FunctionCallingLLM`` on the tiny model: a forced call parses and validates against
the tool's schema (the grammar, not the random model, guarantees it), ``predict_and_call`` runs the tool, streamed
and whole replies agree, a tool result goes back through the chat, ``structured_predict`` returns a valid object,
and bad tool input is refused naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from llama_index.llms.lorag import LoragLLM
from llama_index.llms.lorag.tools import to_chat


# Bounded arguments: the random tiny model would otherwise write digits or letters until max_tokens. (LlamaIndex's
# schema from a signature drops Annotated constraints, hence explicit schemas.)
class AddArgs(BaseModel):
    a: int = Field(ge=-99, le=99)
    b: int = Field(ge=-99, le=99)


class ShoutArgs(BaseModel):
    word: str = Field(max_length=8)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def shout(word: str) -> str:
    """Repeat a word in capitals."""
    return word.upper()


ADD = FunctionTool.from_defaults(fn=add, fn_schema=AddArgs)
SHOUT = FunctionTool.from_defaults(fn=shout, fn_schema=ShoutArgs)


class City(BaseModel):
    name: str = Field(max_length=8)
    population: int = Field(ge=0, le=10**6)


@pytest.fixture(scope="module")
def llm(long_llm_dir: Path) -> LoragLLM:
    return LoragLLM(model=str(long_llm_dir), quantization="none", device="cpu", max_tokens=120)


def test_is_a_function_calling_llm(llm: LoragLLM) -> None:
    assert isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model


def test_a_forced_call_parses_and_validates(llm: LoragLLM) -> None:
    response = llm.chat_with_tools([ADD, SHOUT], "What is 2 plus 3?", tool_choice="add")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "add" and selection.tool_id
    ADD.metadata.fn_schema.model_validate(selection.tool_kwargs)
    assert "<tool_call>" not in (response.message.content or "")
    required = llm.chat_with_tools([ADD, SHOUT], "Shout hello.", tool_required=True)
    (call,) = llm.get_tool_calls_from_response(required)
    {"add": ADD, "shout": SHOUT}[call.tool_name].metadata.fn_schema.model_validate(call.tool_kwargs)


def test_predict_and_call_runs_the_tool(llm: LoragLLM) -> None:
    result = llm.predict_and_call([SHOUT], "Shout the word hello.", tool_required=True)
    (output,) = result.sources
    assert output.tool_name == "shout" and not output.is_error
    assert output.content == shout(**output.raw_input["kwargs"])


async def test_streamed_calls_equal_whole_ones(llm: LoragLLM) -> None:
    whole = llm.chat_with_tools([ADD], "2 plus 3?", tool_required=True)
    streamed = list(llm.stream_chat_with_tools([ADD], "2 plus 3?", tool_required=True))
    assert (
        streamed[-1].message.additional_kwargs["tool_calls"][0]["function"]
        == (whole.message.additional_kwargs["tool_calls"][0]["function"])
    )
    assert all("<tool_call>" not in (r.message.content or "") for r in streamed)
    pieces = [r async for r in await llm.astream_chat_with_tools([ADD], "2 plus 3?", tool_required=True)]
    assert llm.get_tool_calls_from_response(pieces[-1])[0].tool_kwargs == (
        llm.get_tool_calls_from_response(whole)[0].tool_kwargs
    )


def test_a_tool_result_goes_back_through_the_chat(llm: LoragLLM) -> None:
    user = ChatMessage(role=MessageRole.USER, content="What is 2 plus 3?")
    call = llm.chat_with_tools([ADD], user_msg=user, tool_required=True).message
    (selection,) = llm.get_tool_calls_from_response(llm.chat_with_tools([ADD], user_msg=user, tool_required=True))
    result = ChatMessage(role=MessageRole.TOOL, content="5", additional_kwargs={"tool_call_id": selection.tool_id})
    chat = to_chat([user, call, result])
    assert chat[1]["tool_calls"][0]["function"]["name"] == "add"
    assert chat[2] == {"role": "tool", "content": "5", "tool_call_id": selection.tool_id}
    final = llm.chat_with_tools([ADD], chat_history=[user, call, result], tool_choice="none")
    assert not llm.get_tool_calls_from_response(final, error_on_no_tool_call=False)
    with pytest.raises(ValueError, match="expected at least one tool call"):
        llm.get_tool_calls_from_response(final)


def test_structured_predict_returns_a_valid_object(llm: LoragLLM) -> None:
    city = llm.structured_predict(City, PromptTemplate("Describe the city of {name}."), name="Paris")
    assert isinstance(city, City)
    structured = llm.as_structured_llm(City).chat([ChatMessage(role=MessageRole.USER, content="Describe Paris.")])
    assert isinstance(structured.raw, City)


def test_bad_tool_input_is_refused(llm: LoragLLM) -> None:
    with pytest.raises(ValueError, match="tool_choice 'divide' names no tool"):
        llm.chat_with_tools([ADD], "hi", tool_choice="divide")
    other_add = FunctionTool.from_defaults(fn=shout, name="add", fn_schema=ShoutArgs)
    with pytest.raises(ValueError, match="two different tools are named 'add'"):
        llm.chat_with_tools([ADD, other_add], "hi")


async def test_drives_a_function_agent(llm: LoragLLM) -> None:
    """LlamaIndex's FunctionAgent streams the reply, reads the forced first call, runs the tool and feeds its result
    back (a ``tool`` message with ``tool_call_id``) for the final answer."""
    from llama_index.core.agent.workflow import FunctionAgent

    ran: list[tuple[int, int]] = []

    def add_and_log(a: int, b: int) -> int:
        """Add two integers."""
        ran.append((a, b))
        return a + b

    tool = FunctionTool.from_defaults(fn=add_and_log, name="add", fn_schema=AddArgs)
    agent = FunctionAgent(tools=[tool], llm=llm, initial_tool_choice="add")
    response = await agent.run("What is 2 plus 3?", max_iterations=4)
    assert len(ran) == 1 and all(-99 <= x <= 99 for x in ran[0])
    assert [c.tool_name for c in response.tool_calls] == ["add"]
    assert response.tool_calls[0].tool_output.content == str(sum(ran[0]))

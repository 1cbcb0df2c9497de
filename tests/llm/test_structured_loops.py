"""A grammar-constrained value that loops is closed (``lorag.llm.loops``), tool arguments are bounded, and a
``</tool_call>`` written inside an argument's string does not end the call."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from lorag.llm.loops import LoopBreaker, TokenBytes
from lorag.llm.structured import MAX_ITEMS, MAX_STRING_LENGTH, Grammar, GrammarConstraint, bounded_schema
from lorag.llm.tools import Tool, parse_tool_calls, tool_grammar

VOCABULARY = [b'"', b'"]', b"]", b", ", b'", "', b"a", b"0", b"}", b'"}', b", 7", b""]


def _breaker(json_start: bytes | None = b"") -> LoopBreaker:
    return LoopBreaker(TokenBytes(VOCABULARY), json_start)


def _kept(breaker: LoopBreaker) -> list[bytes]:
    keep = breaker.closing(np.ones(len(VOCABULARY), dtype=bool))
    return [VOCABULARY[i] for i in np.flatnonzero(keep)]


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        (b'{"s": "' + b"{" * 40, [b'"', b'"]', b'"}']),  # an exact loop in a string: close the string
        (b'{"s": "sql_' + b"sql_" * 8, [b'"', b'"]', b'"}']),
        (b'{"s": "The game. 1. 2. 3. 4. 5. 6. 7. 8. 9. ', [b'"', b'"]', b'"}']),  # counting inside a string
        (b'{"a": [' + b", ".join(b'"type%d"' % i for i in range(1, 9)) + b', "type9', [b'"', b'"]', b'"}']),
    ],
)
def test_a_looping_value_must_be_closed(written: bytes, kept: list[bytes]):
    breaker = _breaker()
    breaker.extend(written)
    assert _kept(breaker) == kept


def test_a_looping_number_must_end_without_starting_another():
    breaker = _breaker()
    breaker.extend(b'{"n": 1' + b"0" * 40)
    after_a_digit = np.array([data in (b"0", b", ", b"}", b", 7") for data in VOCABULARY])  # as the grammar says
    assert [VOCABULARY[i] for i in np.flatnonzero(breaker.closing(after_a_digit))] == [b", ", b"}"]


def test_real_data_is_no_loop():
    breaker = _breaker()
    breaker.extend(b'{"numbers": [12, 15, 18, 20, 21, 25, 30, 35], "zeros": [0, 0, 0], "n": 1000000, "s": "aaaa bbb')
    assert _kept(breaker) == VOCABULARY


def test_outside_json_nothing_is_masked():
    breaker = _breaker(b"<tool_call>")
    breaker.extend(b"{" * 60)  # free text before any call
    assert _kept(breaker) == VOCABULARY
    breaker.extend(b'<tool_call>{"s": "' + b"{" * 40)
    assert _kept(breaker) == [b'"', b'"]', b'"}']


def test_a_loop_across_items_closes_their_array():
    breaker = _breaker()
    breaker.extend(b'{"a": [' + b'"", ' * 10)
    assert _kept(breaker) == [b"]"]
    no_bracket = np.array([data != b"]" for data in VOCABULARY])  # right after a comma the grammar wants an item
    kept = [VOCABULARY[i] for i in np.flatnonzero(breaker.closing(no_bracket))]
    assert kept == [data for data in VOCABULARY if data not in (b"]", b", ", b", 7")]  # one item, no other


def _greedy(grammar: Grammar, tokenizer, favourite: str, steps: int = 300) -> str:  # type: ignore[no-untyped-def]
    """Decode with a "model" that always prefers one token, as a looping small model does."""
    eos = tokenizer.eos_token_id
    constraint = GrammarConstraint(grammar, tokenizer, 0, [eos])
    (preferred,) = tokenizer.encode(favourite, add_special_tokens=False)
    prefs = torch.zeros(1, len(tokenizer))
    prefs[0, preferred] = 1.0
    ids: list[int] = []
    for _ in range(steps):
        token = int(constraint(torch.tensor([ids], dtype=torch.long), prefs.clone()).argmax())
        if token == eos:
            return str(tokenizer.decode(ids))
        ids.append(token)
    raise AssertionError(f"no end after {steps} tokens: {tokenizer.decode(ids)!r}")


def test_a_model_stuck_on_one_token_still_ends_with_valid_json(tiny_llm_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    schema = {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]}
    value = json.loads(_greedy(Grammar.json_schema(schema), tokenizer, "a"))
    jsonschema.validate(value, schema)
    assert 0 < len(value["note"]) < 64


def test_a_forced_call_of_a_stuck_model_parses(tiny_llm_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tool = Tool("tag", parameters={"type": "object", "properties": {"tags": {"type": "array", "items": {}}}})
    reply = parse_tool_calls(_greedy(tool_grammar([tool], "required", listed=True), tokenizer, "0"))
    assert not reply.invalid_tool_calls and [c.name for c in reply.tool_calls] == ["tag"]


def test_bounded_schema_bounds_only_what_is_unbounded():
    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "string"},
            "short": {"type": "string", "maxLength": 5},
            "long": {"type": "string", "minLength": 1000},
            "colour": {"type": "string", "enum": ["red", "blue"]},
            "list": {"type": ["array", "null"], "items": {"type": "string"}},
        },
    }
    bounded = bounded_schema(schema)["properties"]
    assert bounded["free"]["maxLength"] == MAX_STRING_LENGTH and bounded["short"]["maxLength"] == 5
    assert bounded["long"]["maxLength"] == 1000 and "maxLength" not in bounded["colour"]
    assert bounded["list"]["maxItems"] == MAX_ITEMS and bounded["list"]["items"]["maxLength"] == MAX_STRING_LENGTH
    assert schema["properties"]["free"] == {"type": "string"}  # the caller's schema is left alone


def test_a_close_tag_inside_an_argument_is_part_of_the_value():
    text = 'Hi<tool_call>[\n{"name": "f", "arguments": {"s": "}]</tool_call> and \\" more"}}\n]</tool_call>bye'
    reply = parse_tool_calls(text)
    assert reply.content == "Hibye" and not reply.invalid_tool_calls
    assert reply.tool_calls[0].arguments == {"s": '}]</tool_call> and " more'}
    broken = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"s": "a}}</tool_call> tail')
    assert broken.content == " tail" and len(broken.invalid_tool_calls) == 1  # an unpaired quote: the tag ends it

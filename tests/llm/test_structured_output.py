"""Grammar-constrained generation on the tiny model: random schemas always give valid JSON, each row of a mixed
batch keeps its own grammar, and what llguidance cannot enforce is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorag.llm import Grammar, GrammarError, LoragEngine, SamplingParams

pytest.importorskip("llguidance")

CHAT = [{"role": "user", "content": "Give the record as JSON."}]
NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


def _bounded_int(low: int) -> st.SearchStrategy[dict]:
    return st.integers(low, low + 1000).map(lambda high: {"type": "integer", "minimum": low, "maximum": high})


def _object(properties: dict) -> st.SearchStrategy[dict]:
    required = st.lists(st.sampled_from(sorted(properties)), unique=True)
    return required.map(lambda names: {"type": "object", "properties": properties, "required": names})


# Every schema bounds its output (string lengths, integer ranges, array sizes), so a complete value always fits in
# max_tokens and a "length" finish would be a failure of the constraint, not of the budget.
LEAVES = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.integers(-50, 50).flatmap(_bounded_int),
    st.integers(0, 6).map(lambda n: {"type": "string", "maxLength": n}),
    st.just({"type": "string", "pattern": "^[a-z]{1,4}-[0-9]{2}$"}),
    st.lists(st.text(alphabet="ab yz", max_size=4), min_size=1, max_size=3, unique=True).map(lambda v: {"enum": v}),
    st.sampled_from(["x", 7, True, None]).map(lambda c: {"const": c}),
)
SCHEMAS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, st.integers(0, 3)).map(lambda t: {"type": "array", "items": t[0], "maxItems": t[1]}),
        st.dictionaries(NAMES, inner, min_size=1, max_size=3).flatmap(_object),
        st.lists(inner, min_size=2, max_size=3).map(lambda options: {"anyOf": options}),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def engine(tiny_llm_dir: Path, adapter_dirs: dict[str, Path], llm_device: str):
    eng = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=adapter_dirs)
    yield eng
    eng.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=SCHEMAS, temperature=st.sampled_from([0.0, 1.0]), seed=st.integers(0, 2**16))
def test_output_is_valid_json_for_random_schemas(engine: LoragEngine, schema: dict, temperature: float, seed: int):
    result = engine.generate(
        messages=CHAT, grammar=Grammar.json_schema(schema), temperature=temperature, seed=seed, max_tokens=300
    )
    assert result.finish_reason == "stop", result.text
    jsonschema.validate(json.loads(result.text), schema)
    assert "\n" not in result.text  # one line: no free whitespace for a small model to loop on


def test_refs_and_defs_resolve(engine: LoragEngine):
    schema = {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}}}},
        "type": "array",
        "items": {"$ref": "#/$defs/point"},
        "minItems": 2,
        "maxItems": 2,
    }
    result = engine.generate(messages=CHAT, grammar=Grammar.json_schema(schema), max_tokens=200)
    jsonschema.validate(json.loads(result.text), schema)


def test_strict_closes_objects_without_changing_what_validates():
    schema = {"type": "object", "properties": {"properties": {"type": "object", "properties": {"a": {}}}}}
    strict = Grammar.json_schema(schema)
    loose = Grammar.json_schema(schema, strict=False)
    assert strict != loose
    from lorag.llm.structured import strict_schema

    closed = strict_schema(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]  # a property named "properties" is not a keyword


def test_each_row_of_a_mixed_batch_keeps_its_own_grammar(engine: LoragEngine):
    """Four constrained requests over three adapters and the base in shared forward passes: each output validates
    against its own schema and equals the output the request gets alone."""
    cases = [
        ("a0", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}}}),
        ("a1", {"type": "array", "items": {"enum": ["yes", "no"]}, "minItems": 1, "maxItems": 3}),
        (None, {"type": "string", "maxLength": 5}),
        ("a0", {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}),
    ]
    solo = [
        engine.generate(messages=CHAT, adapter=adapter, grammar=Grammar.json_schema(schema), max_tokens=60).text
        for adapter, schema in cases
    ]
    engine.scheduler.max_rows_seen = 0
    handles = [
        engine.submit(messages=CHAT, adapter=adapter, grammar=Grammar.json_schema(schema), max_tokens=60)
        for adapter, schema in cases
    ]
    batched = [handle.result().text for handle in handles]
    assert engine.scheduler.max_rows_seen == len(cases)  # several adapter groups decoded together
    for (_, schema), text in zip(cases, batched, strict=True):
        jsonschema.validate(json.loads(text), schema)
    assert batched == solo


def test_a_broken_constraint_fails_its_own_request_only(engine: LoragEngine):
    """min_tokens holds back the end of "7", which the grammar has completed: that request fails, naming why; the
    request beside it in the batch finishes as it would alone."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    alone = engine.generate(messages=CHAT, adapter="a1", grammar=Grammar.json_schema(schema), max_tokens=40).text
    broken = engine.submit(messages=CHAT, grammar=Grammar.json_schema({"const": 7}), min_tokens=5, max_tokens=40)
    fine = engine.submit(messages=CHAT, adapter="a1", grammar=Grammar.json_schema(schema), max_tokens=40)
    with pytest.raises(GrammarError, match="min_tokens"):
        broken.result()
    assert fine.result().text == alone


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "not"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "string", "pattern": "(?=a)b"}, "look-around"),
        ({"type": "string", "format": "color"}, "format"),
        ({"$ref": "#/$defs/missing"}, "missing"),
    ],
)
def test_a_schema_llguidance_cannot_enforce_is_refused_by_name(schema: dict, named: str):
    with pytest.raises(GrammarError, match=named):
        Grammar.json_schema(schema)


def test_bad_grammar_values_are_refused():
    with pytest.raises(GrammarError, match="not valid JSON"):
        Grammar.json_schema("{nope")
    with pytest.raises(GrammarError, match="must be an object"):
        Grammar.json_schema([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grammar must be"):
        SamplingParams(grammar={"type": "object"})  # type: ignore[arg-type]
    with pytest.raises(GrammarError, match="grammar cannot be enforced"):
        Grammar.lark("start: undefined_rule")

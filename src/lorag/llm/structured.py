"""Grammar-constrained decoding: a JSON schema (or a Lark grammar) becomes a per-request token mask.

Each step, the tokens that cannot continue a valid output get a logit of -inf, so even a 135M model's output always
parses and validates against the schema (unless ``max_tokens`` or a stop string cuts it: ``finish_reason`` says so).

The grammar library is llguidance (guidance-ai, MIT), chosen over xgrammar, outlines-core and lm-format-enforcer:

- it computes each step's mask from an Earley parser walking the tokenizer's trie, with no per-schema index built
  ahead of decoding (outlines-core builds one per schema), so every request can bring its own schema at no set-up
  cost; the mask for SmolLM2's 49,152-token vocabulary takes about a millisecond on CPU;
- its wheel is Rust with no Python dependencies (xgrammar's pulls triton and apache-tvm-ffi; lm-format-enforcer is
  pure Python per token);
- it names what it cannot enforce (``Unimplemented keys: ["not"]``, look-around in a ``pattern``), so such a schema is
  refused when the request is made, not silently ignored;
- a Lark grammar can embed JSON schemas behind lazy triggers, which is what tool calls inside free text need
  (``lorag.llm.tools``).

A ``GrammarConstraint`` holds one request's parser state and has a transformers logits processor's signature, so the
scheduler runs it like the penalties: on that request's own ids and logits row, whatever else shares the batch.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

_INSTALL = "grammar-constrained generation needs llguidance: pip install 'lorag[structured]' (or llguidance)"
#: One line of compact JSON ("a": 1, "b": 2): no free whitespace, which a small model could emit without end.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GrammarError(ValueError):
    """A schema or grammar that cannot be enforced (the message names the construct), or a broken constraint."""


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf  # needs transformers, which every engine has
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return llguidance


def map_subschemas(schema: Mapping[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of ``schema`` with ``fn`` applied to each direct subschema (under ``properties``, ``items``, ``anyOf``,
    ``$defs`` and the other applicator keywords), so a walk never mistakes a property's name for a keyword."""
    out = dict(schema)
    for key in ("properties", "patternProperties", "$defs", "definitions"):
        if isinstance(out.get(key), Mapping):
            out[key] = {name: fn(sub) for name, sub in out[key].items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [fn(sub) for sub in out[key]]
    for key in ("items", "additionalProperties", "contains", "not", "if", "then", "else"):
        if key in out:
            out[key] = fn(out[key])
    return out


def strict_schema(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists ``properties`` and says nothing
    about other keys (as OpenAI's strict mode does): a valid output of the result is a valid output of the original,
    and the model cannot pad an object with keys nobody asked for."""
    if not isinstance(schema, Mapping):
        return schema
    out = map_subschemas(schema, strict_schema)
    if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class Grammar:
    """What a request's output must match, in llguidance's serialized form; build it with a classmethod.

    Attributes:
        source: The llguidance grammar (opaque; pass it to llguidance).
        kind: ``json_schema`` or ``lark``, for messages.
    """

    source: str
    kind: str

    @classmethod
    def json_schema(cls, schema: Mapping[str, Any] | str, *, strict: bool = True) -> Grammar:
        """Output one JSON value valid under ``schema`` (a dict or its JSON text), on one line.

        Args:
            schema: A JSON schema (draft 2020-12 keywords; ``$defs``/``$ref`` resolve within it).
            strict: Close objects that list ``properties`` (see ``strict_schema``).

        Raises:
            GrammarError: The schema is not JSON, or uses a construct llguidance cannot enforce (named).
        """
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as err:
                raise GrammarError(f"the JSON schema is not valid JSON: {err}") from err
        if not isinstance(schema, Mapping):
            raise GrammarError(f"a JSON schema must be an object, got {type(schema).__name__}")
        body = strict_schema(dict(schema)) if strict else dict(schema)
        body["x-guidance"] = {**JSON_LAYOUT, **body.get("x-guidance", {})}
        try:
            source = _llguidance().LLMatcher.grammar_from_json_schema(json.dumps(body))
        except (TypeError, ValueError) as err:
            raise GrammarError(f"the JSON schema cannot be serialized: {err}") from err
        return cls._checked(source, "json_schema")

    @classmethod
    def json_object(cls) -> Grammar:
        """Any JSON object (OpenAI's JSON mode)."""
        return cls.json_schema({"type": "object"}, strict=False)

    @classmethod
    def lark(cls, text: str) -> Grammar:
        """A grammar in llguidance's Lark dialect (which adds ``%json {schema}`` and ``[lazy]`` rules).

        Raises:
            GrammarError: The grammar does not compile (the message says where).
        """
        return cls._checked(_llguidance().LLMatcher.grammar_from_lark(text), "lark")

    @classmethod
    def _checked(cls, source: str, kind: str) -> Grammar:
        error = _llguidance().LLMatcher.validate_grammar(source)
        if error:
            what = "JSON schema" if kind == "json_schema" else "grammar"
            raise GrammarError(f"the {what} cannot be enforced: {error}")
        return cls(source, kind)


_TOKENIZERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], Any]] = weakref.WeakKeyDictionary()
_TOKENIZERS_LOCK = threading.Lock()


def _ll_tokenizer(tokenizer: Any, eos_ids: tuple[int, ...]) -> Any:
    """llguidance's view of a Hugging Face fast tokenizer; building it reads the whole vocabulary (~0.5 s for
    SmolLM2's), so it is built once per tokenizer and end-of-sequence set."""
    hf = _llguidance().hf

    with _TOKENIZERS_LOCK:
        by_eos = _TOKENIZERS.setdefault(tokenizer, {})
        if eos_ids not in by_eos:
            try:
                by_eos[eos_ids] = hf.from_tokenizer(tokenizer, eos_token=list(eos_ids) or None)
            except ValueError as err:
                raise GrammarError(f"grammar-constrained generation needs a fast tokenizer: {err}") from err
        return by_eos[eos_ids]


class GrammarConstraint:
    """One request's grammar state as a logits processor: feeds it the tokens generated since the last call, then
    sets every token the grammar forbids to -inf.

    Args:
        grammar: The constraint.
        tokenizer: The model's (fast) tokenizer.
        prompt_length: Ids before this are the prompt, which the grammar does not see.
        eos_ids: End-of-sequence ids; the grammar allows them once the output is complete.

    Raises:
        GrammarError: No token satisfies both the grammar and the processors before it (say ``min_tokens`` holds
            back the end of a complete output); the request fails, its batch neighbours do not.
    """

    def __init__(self, grammar: Grammar, tokenizer: Any, prompt_length: int, eos_ids: Collection[int]) -> None:
        llguidance = _llguidance()
        self._matcher = llguidance.LLMatcher(_ll_tokenizer(tokenizer, tuple(sorted(eos_ids))), grammar.source)
        if self._matcher.is_error():
            raise GrammarError(f"the {grammar.kind} cannot be enforced: {self._matcher.get_error()}")
        self._prompt_length = prompt_length
        self._consumed = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        new = input_ids[0, self._prompt_length + self._consumed :].tolist()
        if new and not self._matcher.consume_tokens(new):
            raise GrammarError(f"the output left its grammar: {self._matcher.get_error()}")
        self._consumed += len(new)
        allowed = torch.frombuffer(bytearray(self._matcher.compute_logit_bias()), dtype=torch.uint8)
        if self._matcher.is_error():
            raise GrammarError(f"the grammar failed: {self._matcher.get_error()}")
        n = min(len(allowed), scores.shape[-1])
        keep = scores.new_zeros(scores.shape, dtype=torch.bool)
        keep[..., :n] = allowed[:n].to(scores.device) != 0
        masked = scores.masked_fill(~keep, float("-inf"))
        if torch.isneginf(masked).all():
            raise GrammarError(
                "no token is allowed by both the grammar and the other settings (e.g. min_tokens holding back the "
                "end of a complete output)"
            )
        return masked

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

The grammar keeps every token valid, so a small model that falls into a loop inside a value could never leave it:
``lorag.llm.loops`` closes such a value, and tool arguments are bounded (``bounded_schema``).

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

from lorag.llm.loops import LoopBreaker, TokenBytes

_INSTALL = "grammar-constrained generation needs llguidance: pip install 'lorag[structured]' (or llguidance)"
#: Bounds ``bounded_schema`` gives a string or array that has none: longer than a tool argument usually is, short
#: enough that a value the model cannot stop writing still ends within a few hundred tokens.
MAX_STRING_LENGTH, MAX_ITEMS = 256, 32
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


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    return {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else set()


def bounded_schema(schema: Any, max_length: int = MAX_STRING_LENGTH, max_items: int = MAX_ITEMS) -> Any:
    """The schema with ``maxLength`` on every string and ``maxItems`` on every array that has no bound (nor an
    ``enum`` or ``const``): every valid output of the result is one of the original, and no value can grow without
    end. A schema that needs longer values says so with its own ``maxLength`` / ``maxItems``."""
    if not isinstance(schema, Mapping):
        return schema
    out = map_subschemas(schema, lambda sub: bounded_schema(sub, max_length, max_items))
    if "enum" in out or "const" in out:
        return out
    if "string" in _types(out) and "maxLength" not in out:
        out["maxLength"] = max(max_length, out.get("minLength", 0))
    if "array" in _types(out) and "maxItems" not in out:
        out["maxItems"] = max(max_items, out.get("minItems", 0))
    return out


@dataclass(frozen=True)
class Grammar:
    """What a request's output must match, in llguidance's serialized form; build it with a classmethod.

    Attributes:
        source: The llguidance grammar (opaque; pass it to llguidance).
        kind: ``json_schema`` or ``lark``, for messages.
        json_start: Where the output's JSON values begin, for the loop breaker (``lorag.llm.loops``): ``""`` at the
            start, else after each occurrence of this text; None: no JSON value is closed when the output loops.
    """

    source: str
    kind: str
    json_start: str | None = None

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
        return cls._checked(source, "json_schema", "")

    @classmethod
    def json_object(cls) -> Grammar:
        """Any JSON object (OpenAI's JSON mode)."""
        return cls.json_schema({"type": "object"}, strict=False)

    @classmethod
    def lark(cls, text: str, *, json_start: str | None = None) -> Grammar:
        """A grammar in llguidance's Lark dialect (which adds ``%json {schema}`` and ``[lazy]`` rules).

        Args:
            text: The grammar.
            json_start: Where its JSON values begin (see ``Grammar.json_start``).

        Raises:
            GrammarError: The grammar does not compile (the message says where).
        """
        return cls._checked(_llguidance().LLMatcher.grammar_from_lark(text), "lark", json_start)

    @classmethod
    def _checked(cls, source: str, kind: str, json_start: str | None) -> Grammar:
        error = _llguidance().LLMatcher.validate_grammar(source)
        if error:
            what = "JSON schema" if kind == "json_schema" else "grammar"
            raise GrammarError(f"the {what} cannot be enforced: {error}")
        return cls(source, kind, json_start)


@dataclass
class _Vocabulary:
    """llguidance's view of a Hugging Face tokenizer, and each token's bytes for the loop breaker (read once, at the
    first constrained output)."""

    ll: Any
    _bytes: TokenBytes | None = None

    @property
    def token_bytes(self) -> TokenBytes:
        if self._bytes is None:
            special = self.ll.is_special_token
            self._bytes = TokenBytes(
                [b"" if special(i) else self.ll.decode_bytes([i]) for i in range(self.ll.vocab_size)]
            )
        return self._bytes


_TOKENIZERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], _Vocabulary]] = weakref.WeakKeyDictionary()
_TOKENIZERS_LOCK = threading.Lock()


def _vocabulary(tokenizer: Any, eos_ids: tuple[int, ...]) -> _Vocabulary:
    """llguidance's view of a Hugging Face fast tokenizer; building it reads the whole vocabulary (~0.5 s for
    SmolLM2's), so it is built once per tokenizer and end-of-sequence set."""
    hf = _llguidance().hf

    with _TOKENIZERS_LOCK:
        by_eos = _TOKENIZERS.setdefault(tokenizer, {})
        if eos_ids not in by_eos:
            try:
                by_eos[eos_ids] = _Vocabulary(hf.from_tokenizer(tokenizer, eos_token=list(eos_ids) or None))
            except ValueError as err:
                raise GrammarError(f"grammar-constrained generation needs a fast tokenizer: {err}") from err
        return by_eos[eos_ids]


class GrammarConstraint:
    """One request's grammar state as a logits processor: feeds it the tokens generated since the last call, then
    sets every token the grammar forbids to -inf, and while the output loops inside a JSON value, every token that
    does not close that value (``lorag.llm.loops``), so a looping small model still ends where the grammar allows.

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
        self._vocabulary = _vocabulary(tokenizer, tuple(sorted(eos_ids)))
        self._matcher = llguidance.LLMatcher(self._vocabulary.ll, grammar.source)
        self._json_start = None if grammar.json_start is None else grammar.json_start.encode()
        self._loops: LoopBreaker | None = None
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
        allowed = torch.frombuffer(bytearray(self._matcher.compute_logit_bias()), dtype=torch.uint8) != 0
        if self._matcher.is_error():
            raise GrammarError(f"the grammar failed: {self._matcher.get_error()}")
        if new:
            if self._loops is None:
                self._loops = LoopBreaker(self._vocabulary.token_bytes, self._json_start)
            self._loops.extend(self._vocabulary.ll.decode_bytes(new))
            allowed = torch.from_numpy(self._loops.closing(allowed.numpy()))
        n = min(len(allowed), scores.shape[-1])
        keep = scores.new_zeros(scores.shape, dtype=torch.bool)
        keep[..., :n] = allowed[:n].to(scores.device)
        masked = scores.masked_fill(~keep, float("-inf"))
        if torch.isneginf(masked).all():
            raise GrammarError(
                "no token is allowed by both the grammar and the other settings (e.g. min_tokens holding back the "
                "end of a complete output)"
            )
        return masked

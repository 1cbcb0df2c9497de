"""Per-request generation settings and token choice, prompt building, and exact text assembly (UTF-8 safe, stop
strings).

Tokens and text do not line up: one character can take several byte-level tokens, and a stop string can start in
the middle of one token and end in another. ``TextAssembler`` therefore works on the decoded text of all generated
tokens so far: it emits only text that is final (no trailing half character, no tail that could still become a stop
string) and cuts exactly where a stop string begins.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lorag.llm.structured import Grammar, GrammarConstraint
from lorag.llm.tools import Tool, ToolReply, render_chat

FinishReason = Literal["stop", "length"]
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens for one request.

    Attributes:
        max_tokens: Upper bound on generated tokens (>= 1).
        temperature: 0 means greedy (deterministic); > 0 samples.
        top_p: Nucleus sampling mass in (0, 1].
        top_k: Sample among the k most likely tokens; 0 means all.
        seed: Seed of this request's own random generator, so a sampled output is reproducible under concurrency.
        stop: Strings that end the output; the output is cut right before the first one.
        repetition_penalty: transformers' repetition penalty over the prompt and the output (> 0; 1.0 = off): the
            logit of every token already seen is divided by it (multiplied when negative).
        no_repeat_ngram_size: No n-gram of this size occurs twice in prompt + output, as in transformers (0 = off).
        presence_penalty: OpenAI's: subtracted once from the logit of every token the output already holds
            ([-2, 2]; the prompt does not count).
        frequency_penalty: OpenAI's: subtracted from a token's logit once per time the output already holds it
            ([-2, 2]; the prompt does not count).
        min_tokens: End-of-sequence tokens are suppressed until this many tokens are generated (stop strings still
            end the output).
        sequence_bias: transformers' ``sequence_bias``: pairs of (token ids, bias); the bias is added to the last
            token's logit wherever the ids before it were just generated (a single id: everywhere). E.g. a large
            negative bias on (``The``, ``documents``) forbids a reply from starting "The documents".
        grammar: The output must match it (``Grammar.json_schema(schema)``, ``Grammar.lark(text)``): every token
            that cannot continue a match is masked (``lorag.llm.structured``); applied after the other processors.

    The last seven change the logits before greedy choice or sampling (see ``logits_processors``).
    ``repetition_penalty``, ``no_repeat_ngram_size`` and ``min_tokens`` run transformers' own logits processors, so
    they mean exactly what they mean in ``model.generate``; transformers has none for the OpenAI penalties.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_tokens: int = 0
    sequence_bias: tuple[tuple[tuple[int, ...], float], ...] = ()
    grammar: Grammar | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = no limit), got {self.top_k!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"stop strings must be non-empty strings, got {stop!r}")
        object.__setattr__(self, "stop", stop)
        if not _is_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0 = off), got {self.repetition_penalty!r}")
        if not _is_count(self.no_repeat_ngram_size):
            raise ValueError(
                f"no_repeat_ngram_size must be an integer >= 0 (0 = off), got {self.no_repeat_ngram_size!r}"
            )
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not _is_number(value) or not -2 <= value <= 2:
                raise ValueError(f"{name} must be in [-2, 2] (0 = off), got {value!r}")
        if not _is_count(self.min_tokens) or self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens must be an integer in [0, max_tokens={self.max_tokens}], got {self.min_tokens!r}"
            )
        bias = tuple((tuple(ids), value) for ids, value in (self.sequence_bias or ()))
        if any(not ids or not all(_is_count(i) for i in ids) or not _is_number(value) for ids, value in bias):
            raise ValueError(f"sequence_bias must be pairs of (non-empty token ids, finite bias), got {bias!r}")
        object.__setattr__(self, "sequence_bias", bias)
        if self.grammar is not None and not isinstance(self.grammar, Grammar):
            raise ValueError(f"grammar must be a lorag.llm.structured.Grammar, got {type(self.grammar).__name__}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def shapes_logits(self) -> bool:
        """Whether a penalty, ``min_tokens``, ``sequence_bias`` or a grammar is on (then each step runs logits
        processors)."""
        return (
            self.repetition_penalty != 1.0
            or self.no_repeat_ngram_size > 0
            or self.presence_penalty != 0
            or self.frequency_penalty != 0
            or self.min_tokens > 0
            or bool(self.sequence_bias)
            or self.grammar is not None
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _OpenAIPenalties:
    """Presence and frequency penalties as OpenAI defines them, counted over the generated tokens only; it has a
    transformers logits processor's call signature, so it sits in a ``LogitsProcessorList``."""

    def __init__(self, prompt_length: int, presence: float, frequency: float) -> None:
        self.prompt_length = prompt_length
        self.presence = presence
        self.frequency = frequency

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = input_ids[:, self.prompt_length :]
        counts = scores.new_zeros(scores.shape).scatter_add_(
            1, generated, generated.new_ones(generated.shape).to(scores)
        )
        return scores - counts * self.frequency - (counts > 0).to(scores) * self.presence


def logits_processors(
    params: SamplingParams,
    prompt_length: int,
    eos_ids: Collection[int],
    device: Any = "cpu",
    tokenizer: Any = None,
) -> Any | None:
    """The ``LogitsProcessorList`` for one request's penalties, or None when they are all off (no per-step cost).

    The processors take the request's own ids (prompt + generated so far) and its own logits row, so a request gets
    the same scores alone or in a batch. The order is ``model.generate``'s, with the OpenAI penalties (which it lacks)
    right after the repetition penalty, and the grammar last, so no penalty can lift a token it forbids. A grammar
    processor is stateful: one per request (``tokenizer`` is then required).
    """
    if not params.shapes_logits:
        return None
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (
        MinNewTokensLengthLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        SequenceBiasLogitsProcessor,
    )

    processors: list[Any] = []
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.presence_penalty or params.frequency_penalty:
        processors.append(_OpenAIPenalties(prompt_length, params.presence_penalty, params.frequency_penalty))
    if params.no_repeat_ngram_size:
        processors.append(NoRepeatNGramLogitsProcessor(params.no_repeat_ngram_size))
    if params.min_tokens and eos_ids:
        processors.append(
            MinNewTokensLengthLogitsProcessor(prompt_length, params.min_tokens, sorted(eos_ids), device=str(device))
        )
    if params.sequence_bias:
        processors.append(SequenceBiasLogitsProcessor([[list(ids), bias] for ids, bias in params.sequence_bias]))
    if params.grammar is not None:
        if tokenizer is None:
            raise ValueError("a grammar needs the tokenizer to build its token masks")
        processors.append(GrammarConstraint(params.grammar, tokenizer, prompt_length, eos_ids))
    return LogitsProcessorList(processors) if processors else None


def choose_token(
    params: SamplingParams, logits: Any, processors: Any, ids: Sequence[int], generator: Any = None
) -> int:
    """Greedy or sampled token from one request's logits row, after its own logits ``processors`` (which see only its
    own prompt and generated ``ids``, so batch neighbours cannot change its choice); ``generator``: its own RNG."""
    import torch

    scores = logits
    if processors is not None:
        ids_tensor = torch.tensor([list(ids)], device=logits.device)
        scores = processors(ids_tensor, logits.unsqueeze(0).clone())[0]  # a copy: the raw logits give the log-prob
    if params.greedy:
        return int(torch.argmax(scores).item())
    scores = scores / params.temperature
    if params.top_k:
        kth = torch.topk(scores, min(params.top_k, scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        mass = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = mass - torch.softmax(ordered, dim=-1) >= params.top_p  # keep the token that crosses top_p
        scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


@dataclass(frozen=True)
class Usage:
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    """One streamed piece: new final text (may be empty while a character or stop string is incomplete)."""

    text: str
    token_id: int | None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class GenerationResult:
    """A finished request."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    usage: Usage
    adapter: str
    adapter_version: str
    token_logprobs: list[float] = field(default_factory=list)
    """Log-probability of each generated token under the adapter that produced it (bit-exact under batching): the
    model's raw distribution, before penalties, temperature, top-k/top-p, so it stays comparable across settings."""
    tool_reply: ToolReply | None = None
    """When the request offered tools: ``text`` split into the reply's own text, its calls and its invalid calls."""


def encode_prompt(
    tokenizer: Any,
    prompt: str | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Tool] = (),
) -> list[int]:
    """Token ids for a plain prompt or a chat (rendered with the tokenizer's chat template, with ``tools`` and tool
    calls and results as ``lorag.llm.tools.render_chat`` lays them out).

    Raises:
        ValueError: Both or neither given, an empty prompt, a chat without a template, or tools without a chat.
    """
    if (prompt is None) == (messages is None):
        raise ValueError("give exactly one of prompt= or messages=")
    if messages is not None:
        if not messages:
            raise ValueError("messages is empty; give at least one message")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template; use prompt= instead of messages=")
        text = render_chat(tokenizer, messages, tools)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        if tools:
            raise ValueError("tools are offered in a chat: give messages= instead of prompt=")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty; give some text to continue")
        ids = tokenizer(prompt)["input_ids"]
    if not ids:
        raise ValueError("the prompt tokenizes to no tokens")
    return list(ids)


def check_scorable(reply: str, reply_tokens: int, prompt_tokens: int, window: int) -> None:
    """Refuse a reply ``continuation_logprobs`` cannot score (every engine's): an empty one, or one that does not fit
    the model's window after its chat.

    Raises:
        ValueError: naming the reply and what to do.
    """
    if not reply_tokens:
        raise ValueError(f"reply {reply!r} is empty: give each reply some text to score")
    if prompt_tokens + reply_tokens > window:
        raise ValueError(
            f"the chat and reply {reply[:40]!r} take {prompt_tokens + reply_tokens} tokens, more than the model's "
            f"{window}; shorten the chat"
        )


def check_token_scorable(prompt_ids: Sequence[int], continuation_ids: Sequence[int], window: int, vocab: int) -> None:
    """Refuse tokens ``token_logprobs`` cannot score (every engine's): no continuation, more tokens than the window,
    or an id outside the vocabulary.

    Raises:
        ValueError: naming what is wrong.
    """
    if not continuation_ids:
        raise ValueError("token_logprobs needs at least one continuation token")
    if len(prompt_ids) + len(continuation_ids) > window:
        raise ValueError(
            f"{len(prompt_ids)} prompt and {len(continuation_ids)} continuation tokens exceed the model's "
            f"{window}-token context window"
        )
    if bad := [i for i in (*prompt_ids, *continuation_ids) if not 0 <= int(i) < vocab]:
        raise ValueError(f"token ids {bad[:5]} are outside the model's vocabulary (0 to {vocab - 1})")


def stop_token_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(i) for i in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


class TextAssembler:
    """Turns generated token ids into final text pieces, holding back what may still change.

    Args:
        tokenizer: Decodes ids (special tokens skipped).
        stop: Stop strings; the text is cut right before the earliest occurrence.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(stop)
        self._longest = max((len(s) for s in self._stop), default=0)
        self.token_ids: list[int] = []
        self.emitted = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add a token; returns the newly final text. Sets ``stopped`` when a stop string appeared."""
        self.token_ids.append(token_id)
        text = self._tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if self._stop:
            start = max(0, len(self.emitted) - self._longest)
            hits = [i for i in (text.find(s, start) for s in self._stop) if i >= 0]
            if hits:
                self.stopped = True
                return self._emit(text[: min(hits)])
        stable = text.rstrip(_REPLACEMENT)  # an incomplete UTF-8 sequence decodes to U+FFFD for now
        return self._emit(stable[: len(stable) - self._held_back(stable)])

    def finish(self) -> str:
        """Flush the rest at the end of generation (no stop string came)."""
        if self.stopped:
            return ""
        return self._emit(self._tokenizer.decode(self.token_ids, skip_special_tokens=True))

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
        for n in range(min(self._longest - 1, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stop):
                return n
        return 0

    def _emit(self, text: str) -> str:
        if not text.startswith(self.emitted):  # decoding changed earlier text (rare tokenizer merges): keep it
            return ""
        new = text[len(self.emitted) :]
        self.emitted = text
        return new

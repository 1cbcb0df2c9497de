"""Per-request generation settings, prompt building, and exact text assembly (UTF-8 safe, stop strings).

Tokens and text do not line up: one character can take several byte-level tokens, and a stop string can start in
the middle of one token and end in another. ``TextAssembler`` therefore works on the decoded text of all generated
tokens so far: it emits only text that is final (no trailing half character, no tail that could still become a stop
string) and cuts exactly where a stop string begins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()

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

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


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
    """Log-probability of each generated token under the adapter that produced it (bit-exact under batching)."""


def build_prompt(
    tokenizer: Any, prompt: str | None = None, messages: Sequence[Mapping[str, Any]] | None = None
) -> list[int]:
    """Token ids for a plain prompt or a chat (rendered with the tokenizer's chat template).

    Raises:
        ValueError: Both or neither given, an empty prompt, or a chat without a template.
    """
    if (prompt is None) == (messages is None):
        raise ValueError("give exactly one of prompt= or messages=")
    if messages is not None:
        if not messages:
            raise ValueError("messages is empty; give at least one message")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template; use prompt= instead of messages=")
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty; give some text to continue")
        ids = tokenizer(prompt)["input_ids"]
    if not ids:
        raise ValueError("the prompt tokenizes to no tokens")
    return list(ids)


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

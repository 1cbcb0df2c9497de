"""Tool calls under ``tool_choice="auto"`` for models too unsure to open one themselves.

Greedy decoding calls a tool only when the opening ``<tool_call>`` tag is the model's single most likely start, and
SmolLM2-135M-Instruct never makes it so (0 of 100 BFCL prompts unconstrained, ``benchmarks/results/tool_calls.md``),
so under ``auto`` lorag's agents never acted. Three signals still tell the prompts that need a call from those that
do not (``benchmarks/results/tool_calls_auto.md``): the *probability* the model gives the tag after the prompt (one
teacher-forced forward pass), how many content words the user's message shares with the best-matching tool's name
and description, and how much of a tool's *name* the message covers. Under ``auto`` the engine weighs the three
with a linear rule calibrated for the base and, when the rule says call, forces one call (the tool grammar makes it
valid); otherwise the model writes freely, as before. Only a turn that answers the user is decided so, the turns the
rules were chosen on: after a tool result the model's own choice stands, so a forced call cannot keep an agent
calling. Rules are chosen per base (by content fingerprint) by ``benchmarks/tool_calls_auto.py`` on BFCL prompts the
benchmark does not test; a base without one keeps plain ``auto``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from lorag.llm.adapters import AdapterRegistry
    from lorag.llm.tools import Tool
    from lorag.retrieval.tokenization import Tokenizer

#: ``auto_call_min_logprob`` default: the rule calibrated for the engine's base, if there is one.
CALIBRATED: Final = "calibrated"


@dataclass(frozen=True)
class AutoCallRule:
    """Call when ``logprob_weight * log P(<tool_call> | prompt) + shared_words_weight * shared words +
    name_coverage_weight * name coverage + bias >= 0`` (``shared_tool_words``, ``tool_name_coverage``)."""

    logprob_weight: float
    shared_words_weight: float
    bias: float
    name_coverage_weight: float = 0.0

    @classmethod
    def min_logprob(cls, threshold: float) -> AutoCallRule:
        """The one-signal rule: call when the tag's log-probability is at least ``threshold``."""
        return cls(1.0, 0.0, -float(threshold))

    def calls(self, opening_logprob: float, shared_words: int, name_coverage: float = 0.0) -> bool:
        score = self.logprob_weight * opening_logprob + self.shared_words_weight * shared_words
        return score + self.name_coverage_weight * name_coverage + self.bias >= 0


#: The rule per base fingerprint: a logistic regression over the three signals and the probability threshold of best
#: balanced accuracy, both chosen on BFCL dev prompts by ``benchmarks/tool_calls_auto.py`` and folded into one
#: linear rule (``benchmarks/results/tool_calls_auto.md``).
AUTO_CALL_RULES: Final[dict[str, AutoCallRule]] = {
    # smollm2-135m-instruct (lorag.models): dev balanced accuracy 0.88 (the first two signals: 0.86; the
    # log-probability alone: 0.785)
    "e557f961dd4c8971": AutoCallRule(
        logprob_weight=0.7208, shared_words_weight=0.1458, bias=2.1334, name_coverage_weight=3.3406
    ),
}


def auto_call_rule(value: AutoCallRule | float | str | None, fingerprint: str) -> AutoCallRule | None:
    """The rule a request uses: ``CALIBRATED`` looks the base up, a number is a minimum log-probability of the tag,
    None turns the decision off."""
    if value == CALIBRATED:
        return AUTO_CALL_RULES.get(fingerprint)
    if value is None or isinstance(value, AutoCallRule):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return AutoCallRule.min_logprob(value)
    raise ValueError(
        f"auto_call_min_logprob must be a log-probability, an AutoCallRule, None or {CALIBRATED!r}; got {value!r}"
    )


@lru_cache(maxsize=1)
def _word_tokenizer() -> Tokenizer:
    from lorag.retrieval.tokenization import Tokenizer

    return Tokenizer()  # English stopwords dropped, Snowball stems: "weather?" and "Weather" count as one word


def _words(text: str) -> set[str]:
    """Content words, with identifiers split: ``get_weather``, ``getWeather`` and ``math.factorial`` into words."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return set(_word_tokenizer()(re.sub(r"[_.]", " ", text)))


def _text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last message's text (of content parts, the text ones)."""
    content = messages[-1].get("content") if messages else None
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, Mapping))


def shared_tool_words(messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]) -> int:
    """How many content words the last message shares with the tool whose name and description share the most."""
    asked = _words(_text(messages))
    return max((len(asked & _words(f"{t.name} {t.description}")) for t in tools), default=0)


def tool_name_coverage(messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]) -> float:
    """The largest share of a tool name's content words that the last message contains (0.5 for "the weather in
    Paris" against ``get_weather``): a signal that holds however short or unhelpful the tool's description."""
    asked = _words(_text(messages))
    return max((len(asked & named) / len(named) for t in tools if (named := _words(t.name))), default=0.0)


def opening_ids(tokenizer: Any, opening: str) -> list[int]:
    """The tokens of the opening tag as the model writes it after a prompt."""
    return list(tokenizer(opening, add_special_tokens=False)["input_ids"])


def continuation_logprob(
    registry: AdapterRegistry, prompt_ids: list[int], continuation: list[int], adapter: str | None
) -> float | None:
    """log P(``continuation`` | ``prompt_ids``) under the adapter (``forced_token_logprobs``, summed); None for adapters
    with virtual tokens."""
    scores = forced_token_logprobs(registry, prompt_ids, continuation, adapter)
    return None if scores is None else sum(scores)


def forced_token_logprobs(
    registry: AdapterRegistry, prompt_ids: list[int], continuation: list[int], adapter: str | None
) -> list[float] | None:
    """log P of each token of ``continuation`` after ``prompt_ids`` and the tokens before it, under the adapter,
    teacher-forced in one forward pass on the caller's thread, between the scheduler's steps (the model lock is
    held). None for adapters with virtual tokens, whose prompt is not these ids alone."""
    import torch

    from lorag.llm.attention import row_spans

    name, _ = registry.acquire(adapter)
    try:
        if registry.virtual_tokens(name) is not None:
            return None
        model = registry.base.model
        ids = torch.tensor([prompt_ids + continuation], device=model.device)
        positions = torch.arange(ids.shape[1], device=model.device).unsqueeze(0)
        with registry.model_lock, torch.inference_mode(), row_spans([0]), registry.routed([name]) as routed:
            out = routed(input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=len(continuation) + 1)
        scores = torch.log_softmax(out.logits[0, :-1].float(), dim=-1)
        return scores[torch.arange(len(continuation)), torch.tensor(continuation)].tolist()  # type: ignore[no-any-return]
    finally:
        registry.release(name)

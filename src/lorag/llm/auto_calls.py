"""Tool calls under ``tool_choice="auto"`` for models too unsure to open one themselves.

Greedy decoding calls a tool only when the opening ``<tool_call>`` tag is the model's single most likely start, and
SmolLM2-135M-Instruct never makes it so (0 of 100 BFCL prompts unconstrained, ``benchmarks/results/tool_calls.md``),
so under ``auto`` lorag's agents never acted. The *probability* it gives the tag still tells the prompts that need a
call from those that do not (``benchmarks/results/tool_calls_auto.md``). Under ``auto`` the engine therefore scores
the tag after the prompt (one teacher-forced forward pass) and, when its log-probability reaches the threshold
calibrated for the base, forces one call (the tool grammar makes it valid); below it the model writes freely, as
before. Only a turn that answers the user is decided so, the turns the thresholds were chosen on: after a tool
result the model's own choice stands, so a forced call cannot keep an agent calling. Thresholds are chosen per base
(by content fingerprint) by ``benchmarks/tool_calls_auto.py`` on BFCL prompts the benchmark does not test; a base
without one keeps plain ``auto``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from lorag.llm.adapters import AdapterRegistry

#: ``auto_call_min_logprob`` default: the threshold calibrated for the engine's base, if there is one.
CALIBRATED: Final = "calibrated"

#: log P(``<tool_call>`` | prompt) at or above which ``auto`` calls a tool, per base fingerprint, chosen on BFCL dev
#: prompts by ``benchmarks/tool_calls_auto.py`` (``benchmarks/results/tool_calls_auto.md``).
AUTO_CALL_MIN_LOGPROB: Final[dict[str, float]] = {
    "e557f961dd4c8971": -4.28,  # smollm2-135m-instruct (lorag.models); dev balanced accuracy 0.78
}


def auto_call_threshold(value: float | str | None, fingerprint: str) -> float | None:
    """The threshold a request uses: ``CALIBRATED`` looks the base up, None turns the decision off."""
    if value == CALIBRATED:
        return AUTO_CALL_MIN_LOGPROB.get(fingerprint)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"auto_call_min_logprob must be a log-probability, None or {CALIBRATED!r}; got {value!r}")


def opening_ids(tokenizer: Any, opening: str) -> list[int]:
    """The tokens of the opening tag as the model writes it after a prompt."""
    return list(tokenizer(opening, add_special_tokens=False)["input_ids"])


def continuation_logprob(
    registry: AdapterRegistry, prompt_ids: list[int], continuation: list[int], adapter: str | None
) -> float | None:
    """log P(``continuation`` | ``prompt_ids``) under the adapter, teacher-forced in one forward pass on the
    caller's thread, between the scheduler's steps (the model lock is held). None for adapters with virtual tokens,
    whose prompt is not these ids alone."""
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
        return float(scores[torch.arange(len(continuation)), torch.tensor(continuation)].sum())
    finally:
        registry.release(name)

"""``LoragEngine.continuation_logprobs``: how likely the model finds each given reply to a chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.llm import LoragEngine
from lorag.llm.generation import encode_prompt

CHAT = [{"role": "user", "content": "Which band was formed first, Wavves or Social Code?"}]


def _teacher_forced(engine: LoragEngine, reply: str) -> float:
    """log P(reply | chat) from one full forward pass of the base per reply token."""
    import torch

    ids = encode_prompt(engine.tokenizer, None, CHAT)
    model, total = engine.scheduler.registry.base.model, 0.0
    with torch.inference_mode():
        for token in engine.tokenizer(reply, add_special_tokens=False)["input_ids"]:
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
            total += float(torch.log_softmax(logits, -1)[token])
            ids = [*ids, token]
    return total


def test_each_reply_gets_its_teacher_forced_log_probability(engine: LoragEngine) -> None:
    replies = ["Wavves", "Social Code"]
    scores = engine.continuation_logprobs(CHAT, replies)
    assert scores is not None and len(scores) == 2
    for reply, score in zip(replies, scores, strict=True):
        assert score == pytest.approx(_teacher_forced(engine, reply), abs=1e-4) and score < 0
    with_adapter = engine.continuation_logprobs(CHAT, replies, adapter="a0")
    assert with_adapter is not None and with_adapter != pytest.approx(scores, abs=1e-4)  # the adapter is applied


def test_empty_and_overlong_replies_are_refused(engine: LoragEngine) -> None:
    with pytest.raises(ValueError, match="is empty"):
        engine.continuation_logprobs(CHAT, ["Wavves", ""])
    with pytest.raises(ValueError, match="more than the model's"):
        engine.continuation_logprobs(CHAT, ["Wavves " * engine.scheduler.max_length])


def test_adapters_with_virtual_tokens_cannot_score(
    tiny_llm_dir: Path, kind_dirs: dict[str, Path], llm_device: str
) -> None:
    engine = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=kind_dirs)
    try:
        assert engine.continuation_logprobs(CHAT, ["Wavves"], adapter="prompt-tuning") is None
        assert engine.continuation_logprobs(CHAT, ["Wavves"], adapter="ia3") is not None
    finally:
        engine.close()


def test_token_logprobs_are_each_tokens_teacher_forced_log_probability(engine: LoragEngine) -> None:
    prompt = engine.tokenizer("Wavves formed in 2008.\nQuestion:", add_special_tokens=False)["input_ids"]
    question = engine.tokenizer(" When was Wavves formed?", add_special_tokens=False)["input_ids"]
    scores = engine.token_logprobs(prompt, question)
    assert scores is not None and len(scores) == len(question) and all(s < 0 for s in scores)
    reply_sum = engine.continuation_logprobs(CHAT, ["Wavves"])
    chat = encode_prompt(engine.tokenizer, None, CHAT)
    wavves = engine.tokenizer("Wavves", add_special_tokens=False)["input_ids"]
    assert reply_sum is not None and sum(engine.token_logprobs(chat, wavves) or []) == pytest.approx(reply_sum[0])
    assert engine.token_logprobs(prompt, question, adapter="a0") != pytest.approx(scores, abs=1e-4)
    with pytest.raises(ValueError, match="at least one continuation token"):
        engine.token_logprobs(prompt, [])
    with pytest.raises(ValueError, match="window"):
        engine.token_logprobs(prompt * engine.scheduler.max_length, question)
    vocab = engine.base.model.config.vocab_size
    with pytest.raises(ValueError, match=rf"\[{vocab}\] are outside the model's vocabulary"):
        engine.token_logprobs(prompt, [*question, vocab])
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        engine.token_logprobs([-1, *prompt], question)

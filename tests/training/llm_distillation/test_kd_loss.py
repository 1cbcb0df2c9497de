"""The LLM distillation loss against a hand computation, and alpha = 1 against transformers' own SFT loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lorag.losses import LLMDistillationLoss

STUDENT = [[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 3.0]]]
TEACHER = [[[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 0.0], [0.0, 4.0, 0.0]]]
# Position t predicts label t + 1: the prompt (label -100) and the last position are never scored.
LABELS = [[-100, 1, 2, -100]]


def softmax(row: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(z / temperature) for z in row]
    return [e / sum(exps) for e in exps]


def by_hand(alpha: float, temperature: float) -> float:
    scored = [(t, LABELS[0][t + 1]) for t in range(3) if LABELS[0][t + 1] != -100]
    ce = sum(-math.log(softmax(STUDENT[0][t])[y]) for t, y in scored) / len(scored)
    kl = 0.0
    for t, _ in scored:
        p, q = softmax(TEACHER[0][t], temperature), softmax(STUDENT[0][t], temperature)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    kl /= len(scored)
    return alpha * ce + (1 - alpha) * temperature**2 * kl


@pytest.mark.parametrize(("alpha", "temperature"), [(0.25, 2.0), (0.0, 1.0), (0.7, 0.5)])
def test_loss_equals_the_hand_computed_value(alpha: float, temperature: float) -> None:
    loss = LLMDistillationLoss(alpha, temperature)(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS))
    assert loss.item() == pytest.approx(by_hand(alpha, temperature), rel=1e-6)


def test_a_known_value_and_the_token_count_normaliser() -> None:
    loss = LLMDistillationLoss(0.25, 2.0)
    value = loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS))
    assert value.item() == pytest.approx(0.78647, abs=1e-5)
    # Under gradient accumulation transformers passes the whole step's token count: the sums are divided by it.
    halved = loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), num_items_in_batch=4)
    assert halved.item() == pytest.approx(value.item() / 2, rel=1e-6)


def test_identical_teacher_leaves_only_the_hard_term() -> None:
    parts = LLMDistillationLoss(0.5, 3.0).compute_components(
        torch.tensor(STUDENT), torch.tensor(STUDENT), torch.tensor(LABELS)
    )
    assert parts["kl"].item() == pytest.approx(0.0, abs=1e-7)


def test_alpha_one_is_exactly_the_models_sft_loss(tiny_llm_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 400, (3, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    labels[2, 9:] = -100  # a shorter completion, as padding leaves it
    teacher_logits = torch.randn(3, 12, model.config.vocab_size)
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
        kd = LLMDistillationLoss(alpha=1.0, temperature=2.0)(out.logits, teacher_logits, labels)
    assert torch.equal(kd, out.loss)


def test_bad_settings_and_mismatched_logits_are_refused() -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        LLMDistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        LLMDistillationLoss(temperature=0.0)
    with pytest.raises(ValueError, match="same vocabulary"):
        LLMDistillationLoss()(torch.zeros(1, 4, 3), torch.zeros(1, 4, 5), torch.tensor(LABELS))

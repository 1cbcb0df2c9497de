"""The distillation loss is the documented formula: L = a*CE + (1-a)*KL + b*MSE, checked by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lorag.losses import EmbeddingDistillationLoss

RNG = np.random.default_rng(7)
STUDENT = RNG.normal(size=(4, 6)).astype(np.float32)
TEACHER = RNG.normal(size=(4, 6)).astype(np.float32)
STUDENT_P = RNG.normal(size=(4, 6)).astype(np.float32)
TEACHER_P = RNG.normal(size=(4, 6)).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def log_softmax(row: np.ndarray) -> np.ndarray:
    return row - row.max() - np.log(np.exp(row - row.max()).sum())


def hand_kl(s_sim: np.ndarray, t_sim: np.ndarray, temperature: float, skip_self: bool) -> float:
    total = 0.0
    for i in range(len(s_sim)):
        cols = [j for j in range(s_sim.shape[1]) if not (skip_self and j == i)]
        log_q = log_softmax(s_sim[i, cols] / temperature)
        log_p = log_softmax(t_sim[i, cols] / temperature)
        total += float((np.exp(log_p) * (log_p - log_q)).sum())
    return total / len(s_sim)


def hand_ce(s_sim: np.ndarray, temperature: float) -> float:
    return float(np.mean([-log_softmax(s_sim[i] / temperature)[i] for i in range(len(s_sim))]))


def hand_mse(student: list[np.ndarray], teacher: list[np.ndarray]) -> float:
    return float(np.mean([((unit(s) - unit(t)) ** 2).sum(1).mean() for s, t in zip(student, teacher, strict=True)]))


def loss(alpha: float, temperature: float, mse_weight: float) -> EmbeddingDistillationLoss:
    return EmbeddingDistillationLoss(torch.nn.Identity(), alpha=alpha, temperature=temperature, mse_weight=mse_weight)


@pytest.mark.parametrize(("alpha", "temperature", "mse_weight"), [(0.5, 0.05, 1.0), (0.3, 0.5, 0.0), (0.9, 1.0, 2.5)])
def test_pairs_loss_is_a_ce_plus_one_minus_a_kl_plus_b_mse(alpha: float, temperature: float, mse_weight: float) -> None:
    s_sim = unit(STUDENT) @ unit(STUDENT_P).T
    t_sim = unit(TEACHER) @ unit(TEACHER_P).T
    ce, kl = hand_ce(s_sim, temperature), hand_kl(s_sim, t_sim, temperature, skip_self=False)
    mse = hand_mse([STUDENT, STUDENT_P], [TEACHER, TEACHER_P])
    expected = alpha * ce + (1 - alpha) * kl + mse_weight * mse

    fn = loss(alpha, temperature, mse_weight)
    embeddings = [torch.from_numpy(STUDENT), torch.from_numpy(STUDENT_P)]
    teacher = [torch.from_numpy(TEACHER), torch.from_numpy(TEACHER_P)]
    parts = fn.compute_components(embeddings, teacher)
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-5, abs=1e-7)
    assert parts["mse"].item() == pytest.approx(mse, rel=1e-5)
    assert fn.compute_loss_from_embeddings(embeddings, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_unlabeled_texts_use_kl_over_the_other_texts_and_mse() -> None:
    """No pairs, no hard targets: L = KL + b*MSE, the KL over j != i (self-similarity masked)."""
    temperature, mse_weight = 0.1, 0.7
    s_sim, t_sim = unit(STUDENT) @ unit(STUDENT).T, unit(TEACHER) @ unit(TEACHER).T
    expected = hand_kl(s_sim, t_sim, temperature, skip_self=True) + mse_weight * hand_mse([STUDENT], [TEACHER])
    fn = loss(0.5, temperature, mse_weight)
    got = fn.compute_loss_from_embeddings([torch.from_numpy(STUDENT)], [torch.from_numpy(TEACHER)])
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert fn.compute_components([torch.from_numpy(STUDENT)], [torch.from_numpy(TEACHER)])["ce"].item() == 0.0


def test_student_equal_to_teacher_has_zero_loss_and_finite_gradients() -> None:
    student = torch.from_numpy(TEACHER.copy()).requires_grad_(True)
    total = loss(0.0, 0.05, 1.0).compute_loss_from_embeddings([student], [torch.from_numpy(TEACHER)])
    total.backward()
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_forward_embeds_with_the_model_and_reads_teacher_labels() -> None:
    """forward() = compute_loss_from_embeddings on the model's sentence embeddings; 3-d labels are pairs."""

    class Lookup(torch.nn.Module):
        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"sentence_embedding": features["x"]}

    fn = EmbeddingDistillationLoss(Lookup(), alpha=0.4, temperature=0.2, mse_weight=0.5)
    features = [{"x": torch.from_numpy(STUDENT)}, {"x": torch.from_numpy(STUDENT_P)}]
    labels = torch.from_numpy(np.stack([TEACHER, TEACHER_P], axis=1))
    direct = fn.compute_loss_from_embeddings(
        [torch.from_numpy(STUDENT), torch.from_numpy(STUDENT_P)],
        [torch.from_numpy(TEACHER), torch.from_numpy(TEACHER_P)],
    )
    assert fn(features, labels).item() == pytest.approx(direct.item(), rel=1e-6)
    assert fn.get_config_dict() == {"alpha": 0.4, "temperature": 0.2, "mse_weight": 0.5}
    assert "Hinton" in fn.citation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": 1.5}, "alpha"), ({"temperature": 0}, "temperature"), ({"mse_weight": -1}, "mse_weight")],
)
def test_bad_hyperparameters_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EmbeddingDistillationLoss(torch.nn.Identity(), **kwargs)


def test_mse_with_different_dimensions_names_the_fix() -> None:
    fn = loss(0.5, 0.05, 1.0)
    with pytest.raises(ValueError, match="projection"):
        fn.compute_loss_from_embeddings([torch.zeros(3, 4) + 1], [torch.ones(3, 6)])
    # without the MSE term, different widths are fine: similarities are compared, not vectors
    assert torch.isfinite(loss(0.5, 0.05, 0.0).compute_loss_from_embeddings([torch.rand(3, 4)], [torch.rand(3, 6)]))

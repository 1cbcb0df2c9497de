"""Knowledge distillation for causal LMs: the student learns the completion from the labels and from the teacher's
next-token distributions.

With ``a = alpha`` and ``T = temperature``, over the completion tokens only (labels other than ``-100``)::

    L = a * CE + (1 - a) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

``CE`` is the usual next-token cross-entropy at temperature 1 (so ``a = 1`` is plain SFT), ``z_t`` and ``z_s`` the
teacher's and student's logits at the same position. Both terms are sums over the completion tokens divided by one
count (by default the batch's completion tokens; under gradient accumulation transformers' ``num_items_in_batch``),
exactly as transformers normalises its causal-LM loss. ``T^2`` keeps the soft term's gradients on the scale of the
hard term's as ``T`` grows (Hinton et al., section 2).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from lorag.training.sft_data import IGNORE_INDEX

#: Defaults of ``lorag train-adapter --teacher``: the two terms weighed equally; T = 2 softens without flattening.
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 2.0


class LLMDistillationLoss(nn.Module):
    """``L = alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)`` over the completion tokens.

    Args:
        alpha: weight of the hard-target cross-entropy, in [0, 1]; ``1 - alpha`` weighs the soft targets.
        temperature: ``T`` dividing both models' logits before the softmax of the KL term; positive.

    References:
        - Hinton, Vinyals, Dean: Distilling the Knowledge in a Neural Network, 2015 (soft targets, the ``T^2``).
        - Sanh et al.: DistilBERT, 2019 (the same loss on a language model's token distributions).

    Requirements:
        1. Teacher and student share a tokenizer, so logit ``i`` means the same token in both.
        2. Logits aligned with the labels: ``(batch, seq, vocab)`` where position ``t`` predicts label ``t + 1``
           (a prompt-tuned student's virtual-token positions removed first).

    Inputs:
        +------------------------------------+-----------------------------------------------+
        | Texts                              | Labels                                        |
        +====================================+===============================================+
        | student and teacher logits         | token ids, ``-100`` outside the completion    |
        +------------------------------------+-----------------------------------------------+

    Relations:
        - ``EmbeddingDistillationLoss`` distils an embedder from in-batch similarities; this one a generator from
          next-token distributions.
        - With ``alpha=1`` it is the causal-LM loss transformers computes from ``labels``.

    Example:
        ::

            loss_fn = LLMDistillationLoss(alpha=0.5, temperature=2.0)
            loss = loss_fn(student(ids).logits, teacher(ids).logits.detach(), labels)
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.alpha = alpha
        self.temperature = temperature

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        labels: Tensor,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        parts = self.compute_components(student_logits, teacher_logits, labels, num_items_in_batch)
        return self.alpha * parts["ce"] + (1 - self.alpha) * self.temperature**2 * parts["kl"]

    def compute_components(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        labels: Tensor,
        num_items_in_batch: Tensor | int | None = None,
    ) -> dict[str, Tensor]:
        """The unweighted ``ce`` and ``kl`` (each a scalar tensor, summed over tokens and divided by the count)."""
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
                "differ: distillation needs the same tokens and the same vocabulary"
            )
        vocab = student_logits.shape[-1]
        targets = labels[:, 1:].reshape(-1).to(student_logits.device)
        student = student_logits[:, :-1].reshape(-1, vocab).float()
        keep = targets != IGNORE_INDEX
        count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
        ce = F.cross_entropy(student, targets, ignore_index=IGNORE_INDEX, reduction="sum") / count
        teacher = teacher_logits[:, :-1].reshape(-1, vocab)[keep].to(student.device).float()
        log_q = F.log_softmax(student[keep] / self.temperature, dim=-1)
        log_p = F.log_softmax(teacher / self.temperature, dim=-1)
        kl = F.kl_div(log_q, log_p, log_target=True, reduction="sum") / count
        return {"ce": ce, "kl": kl}

    def get_config_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "temperature": self.temperature}

    @property
    def citation(self) -> str:
        return """
@article{hinton2015distilling,
    title = "Distilling the Knowledge in a Neural Network",
    author = "Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff",
    journal = "arXiv preprint arXiv:1503.02531",
    year = "2015",
}
"""

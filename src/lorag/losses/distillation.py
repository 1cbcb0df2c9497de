"""Knowledge distillation for embedders: soft targets from the teacher's in-batch similarities, hard targets from
pairs, and the teacher's embeddings themselves.

The total, with ``a = alpha``, ``T = temperature`` and ``b = mse_weight``::

    L = a * CE + (1 - a) * KL + b * MSE

- ``KL = mean_i KL(p_i || q_i)``, ``p_i = softmax(S^t_i / T)``, ``q_i = softmax(S^s_i / T)``: the teacher's and
  the student's distributions over the other in-batch texts, from cosine similarities ``S``. For single texts,
  row ``i`` holds ``cos(x_i, x_j)`` for ``j != i`` (the trivial self-similarity is masked out); for
  (query, positive) pairs it holds ``cos(q_i, p_j)`` over all positives ``j``.
- ``CE = mean_i -log softmax(S^s_i / T)[i]``: the student ranks its own positive first among the in-batch
  positives (hard targets). Only pairs have hard targets: on unlabeled texts ``CE = 0`` and ``a`` is taken as 0,
  so the soft targets keep their full weight.
- ``MSE = mean over texts of ||s / |s| - t / |t| ||^2`` (``= 2 - 2 cos``): the student's unit embedding against
  the teacher's. Needs equal dimensions (give a different-width student a projection, see
  ``lorag.training.students``).

No ``T^2`` factor is applied to KL (Hinton et al. use it to keep gradients comparable across temperatures when the
logits are unbounded; cosine similarities are bounded, and the defaults below are tuned without it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Defaults, documented in the class docstring and used by ``lorag.training.distill.DistillConfig``.
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 0.05
DEFAULT_MSE_WEIGHT = 1.0


class EmbeddingDistillationLoss(nn.Module):
    """``L = alpha * CE + (1 - alpha) * KL + mse_weight * MSE`` between a student and precomputed teacher embeddings.

    Args:
        model: the student ``SentenceTransformer``.
        alpha: weight of the hard-target cross-entropy (``a``); ``1 - alpha`` weighs the soft-target KL. Used only
            when the batch has (query, positive) pairs; default 0.5.
        temperature: ``T`` dividing cosine similarities before the softmax, for both teacher and student; default
            0.05 (a scale of 20, as in MultipleNegativesRankingLoss), where cosine gaps of a few hundredths matter.
        mse_weight: weight of the embedding MSE term (``b``); default 1.0; 0 turns it off (then student and
            teacher dimensions may differ).

    References:
        - Hinton, Vinyals, Dean: Distilling the Knowledge in a Neural Network, 2015 (soft targets at a temperature).
        - Reimers, Gurevych: Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation, 2020
          (MSE to the teacher's sentence embeddings).
        - Henderson et al.: Efficient Natural Language Response Suggestion for Smart Reply, 2017 (in-batch
          negatives).

    Requirements:
        1. Teacher embeddings as labels: shape ``(batch, teacher_dim)`` for one text column, or
           ``(batch, 2, teacher_dim)`` for (query, positive) columns.
        2. Batches of at least 2 rows (a single row has no in-batch distribution; its KL and CE are 0).

    Inputs:
        +--------------------+-----------------------------------------------+
        | Texts              | Labels                                        |
        +====================+===============================================+
        | (text)             | teacher embedding of text                     |
        +--------------------+-----------------------------------------------+
        | (query, positive)  | teacher embeddings of query and positive      |
        +--------------------+-----------------------------------------------+

    Relations:
        - sentence-transformers' ``MSELoss`` / ``EmbedDistillLoss`` is the MSE term alone.
        - ``DistillKLDivLoss`` distils a teacher's *scores* for given candidates; here the candidates are the
          other texts of the batch, so no labelled candidates are needed.
        - ``MultipleNegativesRankingLoss`` is the CE term alone.

    Example:
        ::

            from lorag.losses import EmbeddingDistillationLoss
            loss = EmbeddingDistillationLoss(student, alpha=0.5, temperature=0.05, mse_weight=1.0)
            # train with SentenceTransformerTrainer on a dataset with columns ("text", "label"=teacher embedding)
    """

    def __init__(
        self,
        model: nn.Module,
        alpha: float = DEFAULT_ALPHA,
        temperature: float = DEFAULT_TEMPERATURE,
        mse_weight: float = DEFAULT_MSE_WEIGHT,
    ) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if mse_weight < 0:
            raise ValueError(f"mse_weight must be >= 0, got {mse_weight}")
        self.model = model
        self.alpha = alpha
        self.temperature = temperature
        self.mse_weight = mse_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        if labels is None:
            raise ValueError("EmbeddingDistillationLoss needs the teacher's embeddings as labels")
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        labels = labels.detach()
        teacher = [labels] if labels.dim() == 2 else [labels[:, i] for i in range(labels.size(1))]
        if len(teacher) != len(embeddings):
            raise ValueError(f"{len(embeddings)} text columns but teacher labels for {len(teacher)}")
        return self.compute_loss_from_embeddings(embeddings, teacher)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], teacher_embeddings: list[Tensor]) -> Tensor:
        """The total loss from student and teacher embeddings, one tensor per text column (1 or 2 columns)."""
        parts = self.compute_components(embeddings, teacher_embeddings)
        total = self.alpha * parts["ce"] + (1 - self.alpha) * parts["kl"] if len(embeddings) == 2 else parts["kl"]
        return total + self.mse_weight * parts["mse"]

    def compute_components(self, embeddings: list[Tensor], teacher_embeddings: list[Tensor]) -> dict[str, Tensor]:
        """The unweighted terms ``ce``, ``kl`` and ``mse`` (each a scalar tensor)."""
        if len(embeddings) not in (1, 2):
            raise ValueError(f"expected 1 (text) or 2 (query, positive) columns, got {len(embeddings)}")
        student = [F.normalize(e.float(), dim=-1) for e in embeddings]
        teacher = [F.normalize(t.to(student[0].device).float(), dim=-1) for t in teacher_embeddings]
        zero = student[0].new_zeros(())
        widths = (student[0].shape[-1], teacher[0].shape[-1])
        if widths[0] == widths[1]:
            mse = torch.stack([((s - t) ** 2).sum(-1).mean() for s, t in zip(student, teacher, strict=True)]).mean()
        elif self.mse_weight > 0:
            raise ValueError(
                f"the MSE term needs equal dimensions, but the student gives {widths[0]} and the teacher {widths[1]}: "
                "give the student a projection (lorag.training.students.add_projection) or set mse_weight=0"
            )
        else:
            mse = zero
        batch = student[0].shape[0]
        if batch < 2:
            return {"ce": zero, "kl": zero, "mse": mse}
        if len(student) == 1:
            s_sim, t_sim = student[0] @ student[0].T, teacher[0] @ teacher[0].T
            self_mask = torch.eye(batch, dtype=torch.bool, device=s_sim.device)
        else:
            s_sim, t_sim = student[0] @ student[1].T, teacher[0] @ teacher[1].T
            self_mask = torch.zeros(batch, batch, dtype=torch.bool, device=s_sim.device)
        log_q = F.log_softmax((s_sim / self.temperature).masked_fill(self_mask, float("-inf")), dim=-1)
        log_p = F.log_softmax((t_sim / self.temperature).masked_fill(self_mask, float("-inf")), dim=-1)
        p = log_p.exp()
        # The masked diagonal has p = 0 and log p = log q = -inf: zero the logs there, so no 0 * inf appears.
        kl = (p * (log_p.masked_fill(self_mask, 0.0) - log_q.masked_fill(self_mask, 0.0))).sum(-1).mean()
        if len(student) == 2:
            ce = F.cross_entropy(s_sim / self.temperature, torch.arange(batch, device=s_sim.device))
        else:
            ce = zero
        return {"ce": ce, "kl": kl, "mse": mse}

    def get_config_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "temperature": self.temperature, "mse_weight": self.mse_weight}

    @property
    def citation(self) -> str:
        return """
@article{hinton2015distilling,
    title = "Distilling the Knowledge in a Neural Network",
    author = "Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff",
    journal = "arXiv preprint arXiv:1503.02531",
    year = "2015",
}
@inproceedings{reimers-2020-multilingual-sentence-bert,
    title = "Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing",
    year = "2020",
    url = "https://arxiv.org/abs/2004.09813",
}
"""

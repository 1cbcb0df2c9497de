"""``DistillationTrainer``: transformers' ``Trainer`` with the loss replaced by ``LLMDistillationLoss``.

Only ``compute_loss`` changes; batching, accumulation, evaluation, checkpoints and resume are the Trainer's. The
teacher's logits are computed on the fly for each batch, under ``no_grad``: caching them would cost
``tokens x vocab`` floats per example on disk, more than recomputing on the small teachers lorag targets.
The eval loss is the same distillation loss, so early stopping watches what is trained.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from lorag.losses.llm_distillation import LLMDistillationLoss


class DistillationTrainer(Trainer):  # type: ignore[misc]
    """A ``Trainer`` whose loss distils ``teacher`` into the model (see ``LLMDistillationLoss``)."""

    def __init__(self, *args: Any, teacher: Any, kd_loss: LLMDistillationLoss, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(teacher, "hf_quantizer", None) is None:  # a quantized teacher was placed when it was loaded
            teacher.to(self.args.device)
        self.teacher = teacher
        self.kd_loss = kd_loss

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**features)
        # A prompt-tuned student prepends its virtual tokens' logits; keep the positions of the real tokens.
        student_logits = outputs.logits[:, -labels.shape[1] :]
        with torch.no_grad():
            teacher_logits = self.teacher(**features).logits
        shared = min(student_logits.shape[-1], teacher_logits.shape[-1])  # padded embedding rows differ in size
        if student_logits.shape[-1] != teacher_logits.shape[-1]:
            student_logits, teacher_logits = student_logits[..., :shared], teacher_logits[..., :shared]
        count = num_items_in_batch if self.model_accepts_loss_kwargs else None
        loss = self.kd_loss(student_logits, teacher_logits, labels, count)
        return (loss, outputs) if return_outputs else loss

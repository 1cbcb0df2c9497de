"""Training lowers the distillation loss: the student moves toward the teacher on the training texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from lorag.embedding import Embedder
from lorag.losses import EmbeddingDistillationLoss
from lorag.training.distill import DistillConfig, distill
from lorag.training.students import build_student


def loss_on(model: SentenceTransformer, texts: list[str], teacher: np.ndarray) -> float:
    student = torch.from_numpy(model.encode(texts, convert_to_numpy=True, normalize_embeddings=False))
    fn = EmbeddingDistillationLoss(model)
    return float(fn.compute_loss_from_embeddings([student], [torch.from_numpy(teacher)]))


@pytest.mark.parametrize(("student", "lr"), [("narrow-model", 1e-3), ("static", 5e-2)])
def test_loss_falls_during_training(
    teacher_dir: Path, narrow_student_dir: Path, distill_texts: list[str], tmp_path: Path, student: str, lr: float
) -> None:
    """A random narrower model (with a projection) and a static student both move toward the teacher.

    (A layer-reduced copy of the random tiny teacher starts almost at the teacher already, so it is not used here.)
    """
    spec = str(narrow_student_dir) if student == "narrow-model" else student
    teacher = Embedder(str(teacher_dir))
    targets = teacher.embed_documents(distill_texts)
    torch.manual_seed(0)
    before = loss_on(build_student(spec, teacher.model, texts=distill_texts), distill_texts, targets)
    config = DistillConfig(max_steps=40, batch_size=8, learning_rate=lr, eval_fraction=0.0, show_progress=False)
    result = distill(str(teacher_dir), spec, tmp_path / "student", texts=distill_texts, config=config)
    after = loss_on(result.model, distill_texts, targets)
    assert after < 0.8 * before, (before, after)


def test_held_out_loss_is_reported_during_training(teacher_dir: Path, distill_texts: list[str], tmp_path: Path) -> None:
    config = DistillConfig(max_steps=8, batch_size=8, eval_steps=4, learning_rate=1e-3, show_progress=False)
    result = distill(str(teacher_dir), "layers:1", tmp_path / "student", texts=distill_texts, config=config)
    assert [step for step, _ in result.eval_losses] == [4, 8]
    assert all(np.isfinite(loss) for _, loss in result.eval_losses)
    assert not (tmp_path / "student" / "checkpoints").exists()  # removed after a successful run by default

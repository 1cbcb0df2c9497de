"""A distilled student saved and reloaded gives identical embeddings, for every kind of student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from lorag.training.distill import DistillConfig, distill

QUICK = DistillConfig(max_steps=3, batch_size=8, learning_rate=1e-3, show_progress=False)


@pytest.mark.parametrize("variant", ["layers", "layers-bf16", "static", "narrow-model", "reduced-dim"])
def test_save_and_reload_give_identical_embeddings(
    teacher_dir: Path, narrow_student_dir: Path, distill_texts: list[str], tmp_path: Path, variant: str
) -> None:
    spec, config = {
        "layers": ("layers:1", QUICK),
        # trained under bf16 autocast (forced, whatever the CPU): the returned model still embeds in float32
        "layers-bf16": ("layers:1", DistillConfig(max_steps=3, batch_size=8, bf16=True, show_progress=False)),
        "static": ("static", QUICK),
        "narrow-model": (str(narrow_student_dir), QUICK),
        "reduced-dim": ("layers:1", DistillConfig(max_steps=3, batch_size=8, dimension=8, show_progress=False)),
    }[variant]
    out = tmp_path / "student"
    result = distill(str(teacher_dir), spec, out, texts=distill_texts, config=config)
    assert (out / "model.safetensors").is_file() or any(out.rglob("*.safetensors"))
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pkl"))
    reloaded = SentenceTransformer(str(out), device="cpu")
    texts = distill_texts[:7]
    before = result.model.encode(texts, convert_to_numpy=True)
    after = reloaded.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    expected_dim = 8 if variant == "reduced-dim" else 32  # the teacher's width, via a projection for the narrow model
    assert after.shape == (7, expected_dim)
    record = json.loads((out / "lorag_distill.json").read_text())
    assert record["steps"] == 3 and record["config"]["batch_size"] == 8
    assert record["total_seconds"] >= record["teacher_seconds"] + record["train_seconds"] > 0

"""Students: layers kept spread out, projections where widths differ, PCA-aligned dimensionality reduction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from lorag.training.distill import DistillConfig, distill
from lorag.training.students import StudentSpec, build_student, parse_student_spec, spread_layers


def test_spread_layers_keeps_first_and_last() -> None:
    assert spread_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(6, 2) == [0, 5]
    assert spread_layers(2, 1) == [1]


def test_parse_student_spec() -> None:
    assert parse_student_spec("layers:3") == StudentSpec("layers", layers=3)
    assert parse_student_spec(" static ") == StudentSpec("static")
    assert parse_student_spec("minilm") == StudentSpec("model", model="minilm")
    assert parse_student_spec("org/model-name") == StudentSpec("model", model="org/model-name")
    assert parse_student_spec("/abs/path:with-colon") == StudentSpec("model", model="/abs/path:with-colon")


def test_layer_reduced_student_copies_the_kept_teacher_layers(teacher_dir: Path) -> None:
    teacher = SentenceTransformer(str(teacher_dir), device="cpu")
    student = build_student("layers:1", teacher)
    assert student.transformers_model.config.num_hidden_layers == 1
    kept = student.transformers_model.encoder.layer[0].state_dict()
    last = teacher.transformers_model.encoder.layer[1].state_dict()
    assert all(np.array_equal(kept[k].numpy(), last[k].numpy()) for k in kept)
    assert len(teacher.transformers_model.encoder.layer) == 2  # the teacher itself is untouched


def test_narrow_student_gets_a_projection_to_the_teacher_width(teacher_dir: Path, narrow_student_dir: Path) -> None:
    teacher = SentenceTransformer(str(teacher_dir), device="cpu")
    student = build_student(str(narrow_student_dir), teacher)
    assert [type(m).__name__ for m in student] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert student.encode(["a text"]).shape == (1, 32)


def test_dimension_reduction_starts_at_the_teacher_pca(
    teacher_dir: Path, distill_texts: list[str], tmp_path: Path
) -> None:
    config = DistillConfig(max_steps=1, batch_size=4, dimension=6, learning_rate=1e-12, show_progress=False)
    result = distill(str(teacher_dir), "layers:1", tmp_path / "s", texts=distill_texts, config=config)
    assert result.model.encode(distill_texts[:3]).shape == (3, 6)
    static = distill(str(teacher_dir), "static", tmp_path / "t", texts=distill_texts, config=config)
    assert static.model.encode(distill_texts[:3]).shape == (3, 6)


def test_static_student_is_a_sentence_transformers_static_embedding(
    teacher_dir: Path, distill_texts: list[str]
) -> None:
    teacher = SentenceTransformer(str(teacher_dir), device="cpu")
    student = build_student("static", teacher, texts=distill_texts)
    assert type(student[0]).__name__ == "StaticEmbedding"
    assert student[0].embedding.num_embeddings == len(teacher.tokenizer)
    vectors = student.encode(distill_texts[:4])
    assert vectors.shape == (4, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_pca_dimension_larger_than_teacher_is_refused(
    teacher_dir: Path, distill_texts: list[str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="dimension must be between 1 and 31"):
        distill(
            str(teacher_dir),
            "layers:1",
            tmp_path / "s",
            texts=distill_texts,
            config=DistillConfig(max_steps=1, batch_size=4, dimension=64, show_progress=False),
        )

"""Bad input gets a clear error naming what was wrong, before any model is loaded or file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.training.distill import DistillConfig, distill
from lorag.training.distill_data import read_pairs, read_texts
from lorag.training.students import parse_student_spec

QUICK = DistillConfig(max_steps=2, batch_size=4, show_progress=False)


@pytest.mark.parametrize(
    "spec", ["", "layers", "layers:", "layers:0", "layers:-2", "layers:two", "static:5", "foo:bar"]
)
def test_student_spec_that_does_not_parse(spec: str) -> None:
    with pytest.raises(ValueError, match="valid forms: 'layers:K'"):
        parse_student_spec(spec)


def test_layers_must_be_fewer_than_the_teacher_has(teacher_dir: Path, distill_texts: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"between 1 and 1 of the teacher's 2 layers"):
        distill(str(teacher_dir), "layers:2", tmp_path / "out", texts=distill_texts, config=QUICK)


def test_different_tokenizers_where_the_method_needs_one(
    teacher_dir: Path, other_tokenizer_dir: Path, distill_texts: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"needs the teacher's tokenizer.*teacher \d+ tokens, student \d+"):
        distill(
            str(teacher_dir),
            str(other_tokenizer_dir),
            out,
            texts=distill_texts,
            config=QUICK,
            init_from_teacher=True,
        )
    assert not out.exists() or not any(out.iterdir())
    # the same student without the option trains fine: plain embedding distillation needs no shared vocabulary
    distill(str(teacher_dir), str(other_tokenizer_dir), out, texts=distill_texts, config=QUICK)


def test_init_from_teacher_applies_to_model_students_only(
    teacher_dir: Path, distill_texts: list[str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="init_from_teacher applies to model students"):
        distill(str(teacher_dir), "static", tmp_path / "o", texts=distill_texts, config=QUICK, init_from_teacher=True)


@pytest.mark.parametrize("texts", [[], ["only one"], ["", "   "]])
def test_empty_data(teacher_dir: Path, tmp_path: Path, texts: list[str]) -> None:
    with pytest.raises(ValueError, match="at least 2 non-empty training texts"):
        distill(str(teacher_dir), "layers:1", tmp_path / "out", texts=texts, config=QUICK)
    assert not (tmp_path / "out").exists()


def test_texts_and_pairs_are_exclusive(teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either texts"):
        distill(str(teacher_dir), "layers:1", tmp_path / "o", texts=["a b", "c d"], pairs=[("a", "b")], config=QUICK)
    with pytest.raises(ValueError, match="either texts"):
        distill(str(teacher_dir), "layers:1", tmp_path / "o", config=QUICK)


def test_non_empty_output_is_left_intact(teacher_dir: Path, distill_texts: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        distill(str(teacher_dir), "layers:1", out, texts=distill_texts, config=QUICK)
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 1}, "batch_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"epochs": 0}, "epochs"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"dimension": 0}, "dimension"),
        ({"teacher_backend": "tensorrt"}, r"unknown teacher_backend 'tensorrt'.*openvino"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)


def test_empty_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no texts in"):
        read_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"line 2 has no 'text' field \(keys: body\)"):
        read_texts(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_texts(tmp_path / "broken.jsonl")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"unsupported training data 'data\.csv'"):
        read_texts(tmp_path / "data.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")
    (tmp_path / "pairs.jsonl").write_text('{"query": "q"}\n')
    with pytest.raises(ValueError, match="needs 'query' and 'positive'"):
        read_pairs(tmp_path / "pairs.jsonl")

"""``lorag distill`` trains from a file and reports; bad input exits 2 with the reason."""

from __future__ import annotations

import json
from pathlib import Path

from sentence_transformers import SentenceTransformer
from typer.testing import CliRunner

from lorag.cli import app


def test_distill_from_a_text_file(teacher_dir: Path, distill_texts: list[str], tmp_path: Path) -> None:
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(distill_texts) + "\n")
    out = tmp_path / "student"
    args = [
        "distill",
        "--teacher",
        str(teacher_dir),
        "--student",
        "layers:1",
        "--data",
        str(data),
        "--output",
        str(out),
    ]
    options = ["--max-steps", "2", "--batch-size", "8", "--no-bf16", "--no-group-by-length", "--no-cache", "--quiet"]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["steps"] == 2 and summary["student"] == "layers:1"
    config = json.loads((out / "lorag_distill.json").read_text())["config"]
    assert config["bf16"] is False and config["group_by_length"] is False
    assert SentenceTransformer(str(out), device="cpu").encode(["x"]).shape == (1, 32)


def test_bad_student_spec_and_empty_data_exit_2(teacher_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "empty.txt"
    data.write_text("\n")
    base = ["distill", "--teacher", str(teacher_dir), "--data", str(data), "--output", str(tmp_path / "o")]
    bad_spec = CliRunner().invoke(app, [*base, "--student", "layers:x", "--quiet"])
    assert bad_spec.exit_code == 2 and "does not parse" in bad_spec.output
    empty = CliRunner().invoke(app, [*base, "--student", "layers:1", "--quiet"])
    assert empty.exit_code == 2 and "no texts in" in empty.output
    assert not (tmp_path / "o").exists()


def test_bad_or_missing_teacher_backend_exits_2_and_writes_nothing(
    teacher_dir: Path, distill_texts: list[str], tmp_path: Path, monkeypatch
) -> None:
    import sys

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(distill_texts) + "\n")
    base = ["distill", "--teacher", str(teacher_dir), "--student", "layers:1", "--data", str(data)]
    base += ["--output", str(tmp_path / "o"), "--no-cache", "--quiet"]
    unknown = CliRunner().invoke(app, [*base, "--teacher-backend", "tensorrt"])
    assert unknown.exit_code == 2 and "unknown teacher_backend 'tensorrt'" in unknown.output
    monkeypatch.setitem(sys.modules, "openvino", None)  # the openvino extra is not installed
    missing = CliRunner().invoke(app, [*base, "--teacher-backend", "openvino"])
    assert missing.exit_code == 2 and "lorag[openvino]" in missing.output
    assert not (tmp_path / "o").exists()


def test_whole_texts_keeps_the_first_texts_whole_and_needs_sentences(
    teacher_dir: Path, distill_texts: list[str], tmp_path: Path
) -> None:
    from lorag.training.distill_data import add_sentences

    lines = [" ".join(t.split()) for t in distill_texts]  # one text per line
    docs = [f"{a} {b}" for a, b in zip(lines[::2], lines[1::2], strict=True)]  # 2+ sentences each
    data = tmp_path / "docs.txt"
    data.write_text("\n".join(docs) + "\n")
    base = ["distill", "--teacher", str(teacher_dir), "--student", "layers:1", "--data", str(data)]
    base += ["--max-steps", "1", "--batch-size", "8", "--no-cache", "--quiet"]
    alone = CliRunner().invoke(app, [*base, "--output", str(tmp_path / "alone"), "--whole-texts", "5"])
    assert alone.exit_code == 2 and "--whole-texts N needs --sentences" in alone.output
    assert not (tmp_path / "alone").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n")
    pair_args = ["distill", "--teacher", str(teacher_dir), "--student", "layers:1", "--pairs", str(pairs)]
    pair_args += ["--output", str(tmp_path / "p"), "--sentences", "1", "--no-cache", "--quiet"]
    with_pairs = CliRunner().invoke(app, pair_args)
    assert with_pairs.exit_code == 2 and "not to --pairs" in with_pairs.output
    assert not (tmp_path / "p").exists()
    out = tmp_path / "student"
    result = CliRunner().invoke(app, [*base, "--output", str(out), "--sentences", "1", "--whole-texts", "5"])
    assert result.exit_code == 0, result.output
    expected = add_sentences(docs, 1, whole_texts=5)
    assert expected[:5] == docs[:5] and len(expected) > 5 and docs[5] not in expected  # 5 whole, sentences of all
    assert json.loads((out / "lorag_distill.json").read_text())["examples"] == len(expected)

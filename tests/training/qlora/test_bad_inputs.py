"""Bad data, bad settings and occupied output dirs fail with clear messages and leave files intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lorag.training.qlora import OutputExistsError, QLoRAConfig, train_adapter
from lorag.training.sft_data import DataFormatError, SFTRecord, read_sft_jsonl, tokenize_records
from tests.training.qlora.helpers import echo_task, write_jsonl


def test_empty_and_malformed_lines_are_all_reported_by_number(tmp_path: Path) -> None:
    good = json.dumps(echo_task(1)[0])
    lines = [
        good,
        "",
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"text": "no known keys"}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "user"}]}),
        json.dumps({"prompt": "a", "completion": ""}),
        good,
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_sft_jsonl(path)
    assert [n for n, _ in info.value.problems] == [2, 3, 4, 5, 6, 7, 8]
    message = str(info.value)
    assert "line 2: empty line" in message
    assert "line 3: not valid JSON" in message
    assert "line 6:" in message and "no assistant turn" in message
    assert "keys found: text" in message


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no records"):
        read_sft_jsonl(path)


def test_long_sequences_are_truncated_or_skipped_and_counted(tiny_llm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    short = SFTRecord(line=1, prompt="Q: fox?\nA:", completion=" dog")
    long_answer = SFTRecord(line=2, prompt="Q: fox?\nA:", completion=" dog" * 100)
    long_prompt = SFTRecord(line=3, prompt="fox " * 200, completion=" dog")
    records = [short, long_answer, long_prompt]

    kept, report = tokenize_records(tokenizer, records, max_length=32, overflow="truncate")
    assert [ex.line for ex in kept] == [1, 2]
    assert all(len(ex.input_ids) <= 32 for ex in kept)
    assert (report.n_truncated, report.n_skipped_too_long) == (1, 1)  # line 3 lost its whole completion
    assert report.truncated_lines == [2] and report.skipped_lines == [3]

    kept, report = tokenize_records(tokenizer, records, max_length=32, overflow="skip")
    assert [ex.line for ex in kept] == [1]
    assert (report.n_truncated, report.n_skipped_too_long) == (0, 2)


def test_existing_adapter_is_refused_and_left_intact(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    out.mkdir()
    files = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"weights", "notes.txt": b"mine"}
    for name, content in files.items():
        (out / name).write_bytes(content)
    with pytest.raises(OutputExistsError, match="overwrite"):
        train_adapter(tiny_llm_dir, echo_jsonl, out, QLoRAConfig(quantization="none", max_steps=1))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files

    config = QLoRAConfig(quantization="none", max_steps=1, eval_fraction=0.0)
    train_adapter(tiny_llm_dir, echo_jsonl, out, config, overwrite=True, show_progress=False)
    assert (out / "adapter_model.safetensors").read_bytes() != files["adapter_model.safetensors"]
    assert (out / "notes.txt").read_bytes() == b"mine"
    assert json.loads((out / "training_metadata.json").read_text())["steps"] == 1


def test_bad_data_leaves_the_output_untouched(tiny_llm_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": []}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 1"):
        train_adapter(tiny_llm_dir, data, tmp_path / "out", QLoRAConfig(quantization="none"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantization": "int4"}, "nf4, int8, none"),
        ({"rank": 0}, "rank"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"overflow": "drop"}, "truncate"),
        ({"target_modules": "everything"}, "all-linear"),
    ],
)
def test_bad_settings_name_the_valid_choices(
    tiny_llm_dir: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", echo_task(4))
    with pytest.raises(ValueError, match=message):
        train_adapter(tiny_llm_dir, data, tmp_path / "out", QLoRAConfig(**change))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()

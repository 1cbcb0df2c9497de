"""``load_questions``: every unusable line reported by number, repeated ids, supporting files, empty folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lorag.evaluation import QAQuestion, QuestionsFileError, load_questions


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_reads_questions_in_file_order(tmp_path: Path, docs: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {"id": "b", "question": "Which port?", "answers": ["8000"], "supporting": ["./notes.txt"], "note": "x"},
            {"id": 7, "question": "Moon?", "answers": []},
        ],
    )
    questions = load_questions(path, docs)
    assert questions == [
        QAQuestion("b", "Which port?", ["8000"], ["notes.txt"]),  # ./ dropped: sources are reported without it
        QAQuestion("7", "Moon?", [], []),  # integer ids become strings; supporting is optional
    ]
    assert [q.answerable for q in questions] == [True, False]


def test_every_bad_line_is_reported_by_number(tmp_path: Path, docs: Path) -> None:
    good = {"id": "ok", "question": "Which port?", "answers": ["8000"]}
    path = _write(
        tmp_path / "q.jsonl",
        [
            good,  # 1
            "{not json",  # 2
            '["a list"]',  # 3
            {"id": "x", "question": "?"},  # 4: no answers
            {"id": "y", "question": "?", "answers": "8000"},  # 5: not a list
            "",  # 6
            {"id": True, "question": "?", "answers": []},  # 7
            {"id": "z", "question": "  ", "answers": []},  # 8
            {"id": "w", "question": "?", "answers": ["The."]},  # 9: nothing left to score
            {"id": "v", "question": "?", "answers": [], "supporting": [3]},  # 10
            {**good, "id": "fine"},  # 11
        ],
    )
    with pytest.raises(QuestionsFileError) as caught:
        load_questions(path, docs)
    err = caught.value
    assert [n for n, _ in err.problems] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    message = str(err)
    assert message.startswith(f"{path}: 9 problem(s)")
    for expected in (
        "line 2: not valid JSON",
        "line 3: expected a JSON object, got list",
        'line 4: missing "answers"',
        'line 5: "answers" must be a list',
        "line 6: empty line",
        'line 7: "id" must be a non-empty string or an integer',
        'line 8: "question" must be a non-empty string',
        "line 9: answer 'The.' is only articles or punctuation",
        'line 10: "supporting" must be a list of non-empty strings',
    ):
        assert expected in message
    assert "line 1:" not in message and "line 11:" not in message


def test_long_lists_of_problems_are_cut_with_a_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.jsonl", ["{"] * 25)
    with pytest.raises(QuestionsFileError) as caught:
        load_questions(path)
    assert len(caught.value.problems) == 25
    assert "line 20:" in str(caught.value) and "line 21:" not in str(caught.value)
    assert "... and 5 more" in str(caught.value)


def test_repeated_ids_name_the_id_and_both_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {"id": "q1", "question": "a?", "answers": []},
            {"id": 1, "question": "b?", "answers": []},
            {"id": "q1", "question": "c?", "answers": []},
            {"id": "1", "question": "d?", "answers": []},
        ],
    )
    with pytest.raises(QuestionsFileError) as caught:
        load_questions(path)
    assert "line 3: id 'q1' repeats line 1" in str(caught.value)
    assert "line 4: id '1' repeats line 2" in str(caught.value)


def test_supporting_files_must_be_indexable_files_of_docs(tmp_path: Path, docs: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {"id": "a", "question": "?", "answers": ["x"], "supporting": ["guide/cors.md", "guide/missing.md"]},
            {"id": "b", "question": "?", "answers": ["x"], "supporting": ["../outside.md"]},
            {"id": "c", "question": "?", "answers": ["x"], "supporting": ["logo.png"]},
        ],
    )
    with pytest.raises(QuestionsFileError) as caught:
        load_questions(path, docs)
    message = str(caught.value)
    assert f"line 1: supporting file 'guide/missing.md' is not in {str(docs)!r}" in message
    assert "line 2: supporting file '../outside.md' must be a path relative to" in message
    assert "line 3: supporting file 'logo.png' is not indexed" in message
    assert "'guide/cors.md'" not in message
    assert load_questions(path)[0].supporting == ["guide/cors.md", "guide/missing.md"]  # without DOCS: not checked


def test_a_supporting_file_the_index_leaves_out_is_reported(tmp_path: Path, docs: Path) -> None:
    rows = [{"id": "a", "question": "?", "answers": ["x"], "supporting": ["guide/cors.md"]}]
    path = _write(
        tmp_path / "q.jsonl", [*rows, {"id": "b", "question": "?", "answers": ["x"], "supporting": ["tasks.md"]}]
    )
    with pytest.raises(QuestionsFileError) as caught:
        load_questions(path, docs, exclude=["guide/", ""])
    message = str(caught.value)
    assert "line 1: supporting file 'guide/cors.md' is left out by --exclude ['guide/']" in message
    assert "line 2" not in message
    assert len(load_questions(path, docs, exclude=["notes.txt"])) == 2


def test_empty_or_missing_inputs(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.jsonl"
    empty_file.write_text("")
    with pytest.raises(QuestionsFileError, match="the file holds no questions"):
        load_questions(empty_file)
    with pytest.raises(FileNotFoundError, match="questions file"):
        load_questions(tmp_path / "absent.jsonl")
    good = _write(tmp_path / "q.jsonl", [{"id": "a", "question": "?", "answers": []}])
    with pytest.raises(FileNotFoundError, match="document folder"):
        load_questions(good, tmp_path / "no-such-folder")
    folder = tmp_path / "docs"
    (folder / ".hidden").mkdir(parents=True)
    (folder / ".hidden" / "a.md").write_text("hidden")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=r"holds no .* files to answer from"):
        load_questions(good, folder)

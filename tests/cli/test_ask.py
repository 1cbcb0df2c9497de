"""``lorag ask -``: one question a line of standard input, answered in turn by one loaded pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lorag.cli import app


def _args(docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path) -> list[str]:
    args = ["ask", "--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    return [*args, "--model", str(tiny_llm_dir), "--quantization", "none", "--max-tokens", "6", "--min-relevance", "-1"]


def test_each_line_of_stdin_is_answered_as_its_own_ask(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path
) -> None:
    args = _args(docs, tmp_path, tiny_st_dir, tiny_llm_dir)
    questions = ["Which origins are allowed?", "When do background tasks run?"]
    many = CliRunner().invoke(app, [*args, "--json", "-"], input=f"{questions[0]}\n\n   \n{questions[1]}\n")
    assert many.exit_code == 0, many.output
    lines = many.stdout.splitlines()
    assert len(lines) == 2  # JSON Lines: blank input lines are skipped, one object a question
    payloads = [json.loads(line) for line in lines]
    assert [p["question"] for p in payloads] == questions
    for question, payload in zip(questions, payloads, strict=True):
        one = CliRunner().invoke(app, [*args, "--json", question])  # greedy: the same answer as asked alone
        assert one.exit_code == 0, one.output
        alone = json.loads(one.stdout)
        assert (payload["answer"], payload["sources"]) == (alone["answer"], alone["sources"])


def test_text_answers_are_those_asked_alone_separated_by_a_blank_line(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path
) -> None:
    args = _args(docs, tmp_path, tiny_st_dir, tiny_llm_dir)
    questions = ["Which origins are allowed?", "Where does the server listen?"]
    many = CliRunner().invoke(app, [*args, "-"], input="\n".join(questions) + "\n")
    assert many.exit_code == 0, many.output
    alone = [CliRunner().invoke(app, [*args, q]).stdout for q in questions]
    assert all("\nSources:" in out or "\nPassages given" in out for out in alone)
    assert many.stdout == alone[0] + "\n" + alone[1]


def test_stdin_without_a_question_is_refused(docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path) -> None:
    result = CliRunner().invoke(app, [*_args(docs, tmp_path, tiny_st_dir, tiny_llm_dir), "-"], input="\n  \n")
    assert result.exit_code == 2
    assert "standard input" in result.stderr and "held none" in result.stderr


def test_streamed_answers_print_what_the_unstreamed_ones_do(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path
) -> None:
    args = _args(docs, tmp_path, tiny_st_dir, tiny_llm_dir)
    questions = "Which origins are allowed?\nWhere does the server listen?\n"
    streamed = CliRunner().invoke(app, [*args, "--stream", "-"], input=questions)
    plain = CliRunner().invoke(app, [*args, "-"], input=questions)
    assert streamed.exit_code == plain.exit_code == 0, streamed.output + plain.output
    assert streamed.stdout == plain.stdout


def test_a_question_the_window_cannot_hold_is_reported_and_the_others_answered(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path
) -> None:
    args = _args(docs, tmp_path, tiny_st_dir, tiny_llm_dir)
    too_long = "Which origins are allowed " * 2000 + "?"
    questions = ["Which origins are allowed?", too_long, "Where does the server listen?"]
    result = CliRunner().invoke(app, [*args, "--json", "-"], input="\n".join(questions) + "\n")
    assert result.exit_code == 1, result.output
    payloads = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["question"] for p in payloads] == questions  # one line a question, in order, the refused one too
    assert "answer" in payloads[0] and "answer" in payloads[2]
    assert "tokens" in payloads[1]["error"] and "answer" not in payloads[1]
    assert "standard input line 2:" in result.stderr and "1 of 3 questions were refused (above)" in result.stderr
    alone = [CliRunner().invoke(app, [*args, q]).stdout for q in (questions[0], questions[2])]
    for stream in ([], ["--stream"]):
        text = CliRunner().invoke(app, [*args, *stream, "-"], input="\n".join(questions) + "\n")
        assert text.exit_code == 1
        assert text.stdout == alone[0] + "\n" + alone[1]  # the refused question prints nothing on stdout


def test_a_declined_question_says_which_gate_declined_and_lists_the_passages_it_read(
    docs: Path, tmp_path: Path, tiny_st_dir: Path, tiny_llm_dir: Path
) -> None:
    args = [*_args(docs, tmp_path, tiny_st_dir, tiny_llm_dir), "--min-relevance", "0.999"]  # the last one counts
    text = CliRunner().invoke(app, [*args, "Which origins are allowed?"])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "The documents do not contain the answer."
    assert "is below min_relevance 0.999 (--min-relevance -1 asks it anyway)." in lines[2]
    assert lines[3] == "Nearest passages (not given to the model):" and lines[4].startswith("[1] ")
    as_json = json.loads(CliRunner().invoke(app, [*args, "--json", "Which origins are allowed?"]).stdout)
    assert as_json["abstained"] and as_json["sources"] == [] and as_json["declined"]["gate"] == "relevance"
    assert [p["number"] for p in as_json["declined"]["passages"]] == list(range(1, len(lines) - 3))

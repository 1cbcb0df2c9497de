"""``lorag ask``: a folder of documents in, cited answers out, offline; one question, or one a line of standard
input with the model loaded once."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from lorag.cli import app, usage_error
from lorag.cli.answer_options import AnswerOptions, with_answer_options
from lorag.rag.pipeline import Answer, RagPipeline

#: The flag that turns off the gate that declined a question (``Declined.gate``).
DECLINE_FLAGS = {"relevance": "--min-relevance -1", "answerability": "--min-answerability 0"}


@app.command("ask")
@with_answer_options
def ask_command(
    question: str = typer.Argument(
        ...,
        help="The question to answer from the documents; '-' answers each line of standard input in turn, "
        "with the index opened and the model loaded once (a line it cannot take is reported and skipped: exit 1).",
    ),
    docs: Path | None = typer.Option(None, "--docs", help="Folder of .md, .txt and .pdf files (indexed first)."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where the index lives (default .lorag/...)."),
    *,
    options: AnswerOptions,
    stream: bool = typer.Option(False, "--stream", help="Print the answer as it is generated."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object with answer and sources (with '-': one a line, JSON Lines)."
    ),
) -> None:
    """Answer a question from your documents and cite the passages used."""
    if not question.strip():
        raise usage_error("the question is empty: ask something about your documents")
    if stream and as_json:
        raise usage_error("--stream and --json exclude each other")
    if question.strip() != "-":
        with options.open_pipeline(docs, index_dir, quiet=as_json) as pipeline:
            answer = streamed_answer(pipeline, question) if stream else pipeline.ask(question)
            echo_answer(answer, as_json=as_json, json_lines=False, streamed=stream)
        return
    asked, refused = 0, 0
    with options.open_pipeline(docs, index_dir, quiet=as_json) as pipeline:
        for line, text in stdin_questions():
            separator = "\n" if asked > refused and not as_json else ""  # a blank line between printed answers
            asked += 1
            try:  # one question the pipeline refuses (too long for the window) must not end the others
                answer = streamed_answer(pipeline, text, separator) if stream else pipeline.ask(text)
            except ValueError as err:
                refused += 1
                typer.echo(f"error: standard input line {line}: {err}", err=True)
                if as_json:
                    typer.echo(json.dumps({"question": text, "error": str(err)}, ensure_ascii=False))
                continue
            if not stream:
                typer.echo(separator, nl=False)
            echo_answer(answer, as_json=as_json, json_lines=True, streamed=stream)
    if not asked:
        raise usage_error("'-' reads the questions from standard input, one a line, and it held none")
    if refused:
        typer.echo(f"error: {refused} of {asked} questions were refused (above); the others were answered", err=True)
        raise typer.Exit(1)


def stdin_questions() -> Iterator[tuple[int, str]]:
    """The non-blank lines of standard input with their line numbers, each read once the one before is answered
    (so a person can type them), after a prompt on stderr when it is a terminal."""
    prompt = sys.stdin.isatty()
    for number in itertools.count(1):
        if prompt:
            sys.stderr.write("question> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield number, line.strip()


def streamed_answer(pipeline: RagPipeline, question: str, lead: str = "") -> Answer:
    """Print ``lead``, then the answer as it is generated; return the final ``Answer`` (its text is what was
    printed). A question the pipeline refuses raises before anything is printed."""
    answer: Answer | None = None
    for piece in pipeline.stream(question):
        if isinstance(piece, Answer):
            answer = piece
        else:
            sys.stdout.write(lead + piece)
            lead = ""
            sys.stdout.flush()
    typer.echo("")
    assert answer is not None
    return answer


def echo_answer(answer: Answer, *, as_json: bool, json_lines: bool, streamed: bool) -> None:
    """The answer (unless ``streamed`` printed it) and its cited passages, or all given when it cites none, or, when
    a gate declined the question, why and the passages it read; with ``as_json`` one JSON object (on one line with
    ``json_lines``)."""
    if as_json:
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=None if json_lines else 2))
        return
    if not streamed:
        typer.echo(answer.answer)
    if answer.declined is not None:
        flag = DECLINE_FLAGS.get(answer.declined.gate)
        typer.echo(
            f"\nThe model was not asked: {answer.declined.reason}" + (f" ({flag} asks it anyway)." if flag else ".")
        )
        listed = answer.declined_passages
        if listed:
            typer.echo("Nearest passages (not given to the model):")
    else:
        cited = answer.cited
        if answer.sources:
            typer.echo("\nSources:" if cited else "\nPassages given (the answer cites none):")
        listed = answer.cited_sources() if cited else answer.sources
    for s in listed:
        where = s.source + (f" > {s.section}" if s.section else "") + (f", page {s.page}" if s.page else "")
        typer.echo(f"[{s.number}] {where} (chars {s.start}-{s.end})")

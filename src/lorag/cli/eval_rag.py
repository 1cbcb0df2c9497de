"""``lorag eval-rag``: answer a questions file over a folder exactly as ``lorag ask`` would, and score the answers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lorag.cli import app, usage_error
from lorag.cli.answer_engine import engine_label
from lorag.cli.answer_options import AnswerOptions, with_answer_options

#: Metrics printed as rates (4 decimals); the rest are seconds or tokens per second.
_RATES = (
    "exact_match",
    "f1",
    "contains_gold",
    "answered_rate",
    "cited_rate",
    "citation_precision",
    "citation_recall",
    "supporting_in_prompt",
    "abstention_precision",
    "abstention_recall",
)


def _table(metrics: dict[str, float | int | None]) -> list[str]:
    """The metrics as aligned lines; an unmeasured rate (empty denominator) shows as n/a."""

    def show(value: float | int | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{metrics['questions']} questions: {metrics['answerable']} answerable, {metrics['unanswerable']} unanswerable"
    ]
    lines += [f"  {key:<22}{show(metrics[key], 4)}" for key in _RATES]
    lines += [f"  {key:<22}{show(metrics[key], 2)}" for key in ("latency_p50_s", "latency_p95_s", "tokens_per_s")]
    return lines


@app.command("eval-rag")
@with_answer_options
def eval_rag_command(
    docs: Path = typer.Option(..., "--docs", help="Folder of .md, .txt and .pdf files (indexed first)."),
    questions: Path = typer.Option(
        ...,
        "--questions",
        help='JSONL, one {"id", "question", "answers": [...], "supporting": [files in DOCS]} a line; '
        "answers [] for questions the documents do not answer.",
    ),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where the index lives (default .lorag/...)."),
    *,
    options: AnswerOptions,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: the metrics and every answer."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="A progress bar on stderr."),
) -> None:
    """Score answers to a questions file: exact match, F1, citations, abstention, latency and tokens/s.

    The file is checked (with DOCS, for supporting files) before anything is indexed or loaded.
    """
    from lorag.cli.documents import default_index_dir
    from lorag.evaluation import evaluate_rag, load_questions
    from lorag.rag.index import stored_exclude

    try:
        exclude = options.exclude
        if exclude is None:  # the sync will apply the patterns kept with the index: check against those
            exclude = stored_exclude(index_dir or default_index_dir(docs))
        checked = load_questions(questions, docs, exclude=exclude)
    except (FileNotFoundError, ValueError) as err:
        raise usage_error(str(err)) from err
    with options.open_pipeline(docs, index_dir, quiet=as_json) as pipeline:
        report = evaluate_rag(pipeline, checked, progress=progress)
        engine = engine_label(pipeline.engine)
    if as_json:
        typer.echo(json.dumps({"engine": engine, **report.to_json()}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"answered by {engine}")
    for line in _table(report.metrics):
        typer.echo(line)

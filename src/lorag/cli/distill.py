"""``lorag distill``: train a smaller, faster student embedder from a sentence-transformers teacher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lorag.cli import app
from lorag.losses.distillation import DEFAULT_ALPHA, DEFAULT_MSE_WEIGHT, DEFAULT_TEMPERATURE


@app.command("distill")
def distill_command(
    *,
    teacher: str = typer.Option(..., "--teacher", help="Teacher: short name (minilm, mpnet), directory or hub id."),
    student: str = typer.Option(
        ..., "--student", help="layers:K (keep K teacher layers), static (token embeddings), or a model reference."
    ),
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the student (a sentence-transformers model).")
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="Texts: .txt (one per line), .jsonl with 'text', or a BEIR corpus (.jsonl/.jsonl.gz)."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(help="JSONL with 'query' and 'positive': train on pairs (adds the hard-target CE) instead."),
    ] = None,
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after N optimizer steps (-1: whole epochs)."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the data."),
    max_texts: int | None = typer.Option(None, "--max-texts", help="Use only the first N texts of --data."),
    sentences: int = typer.Option(
        0, "--sentences", min=0, help="Also train on N sentences drawn from each text (short, query-like inputs)."
    ),
    whole_texts: int | None = typer.Option(
        None,
        "--whole-texts",
        min=0,
        help="With --sentences: train on only the first N texts whole, sentences from all (cheaper steps).",
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per step (the in-batch candidates)."),
    learning_rate: float | None = typer.Option(None, "--lr", help="Default: 1e-4 (transformers), 1e-2 (static)."),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", help="CE weight a in a*CE + (1-a)*KL (pairs only)."),
    temperature: float = typer.Option(DEFAULT_TEMPERATURE, "--temperature", help="Softmax temperature T."),
    mse_weight: float = typer.Option(DEFAULT_MSE_WEIGHT, "--mse-weight", help="Weight of the embedding MSE."),
    dimension: int | None = typer.Option(None, "--dim", help="Reduce the output to D dimensions (PCA-aligned)."),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length", help="Truncate training texts (tokens)."),
    bf16: bool | None = typer.Option(
        None, "--bf16/--no-bf16", help="bfloat16 autocast for transformer students (default: where native)."
    ),
    group_by_length: bool | None = typer.Option(
        None, "--group-by-length/--no-group-by-length", help="Batch texts of similar length (default: transformers)."
    ),
    teacher_backend: str = typer.Option(
        "torch", "--teacher-backend", help="What computes the targets: torch, onnx, onnx-fp32 or openvino (int8)."
    ),
    init_from_teacher: bool = typer.Option(
        False, "--init-from-teacher", help="Model students: start token embeddings from the teacher's."
    ),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Cache the teacher's embeddings in LORAG_HOME."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoints."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep OUTPUT/checkpoints afterwards."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code shipped with hub models."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Distil TEACHER into a smaller student: L = a*CE + (1-a)*KL(T) + b*MSE, trained on unlabeled texts."""
    from lorag.embedding import EmbeddingCache
    from lorag.models import ModelNotAvailableError, lorag_home
    from lorag.training.distill import DistillConfig, distill
    from lorag.training.distill_data import add_sentences, read_pairs, read_texts
    from lorag.training.students import parse_student_spec

    try:
        spec = parse_student_spec(student)
        config = DistillConfig(
            alpha=alpha,
            temperature=temperature,
            mse_weight=mse_weight,
            dimension=dimension,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_seq_length=max_seq_length,
            bf16=bf16,
            group_by_length=group_by_length,
            teacher_backend=teacher_backend,  # type: ignore[arg-type]  # checked by DistillConfig
            keep_checkpoints=keep_checkpoints,
            show_progress=not quiet,
        )
        if (data is None) == (pairs is None):
            raise ValueError("give --data TEXTS (unlabeled texts) or --pairs PAIRS, exactly one of them")
        train_pairs = read_pairs(pairs, limit=max_texts) if pairs is not None else None
        texts = read_texts(data, limit=max_texts) if data is not None else None
        if pairs is not None and (sentences or whole_texts is not None):
            raise ValueError("--sentences and --whole-texts apply to --data texts, not to --pairs")
        if whole_texts is not None and not sentences:
            raise ValueError("--whole-texts N needs --sentences M: the texts not kept whole give only sentences")
        if texts is not None and sentences:
            texts = add_sentences(texts, sentences, whole_texts=whole_texts)
        result = distill(
            teacher,
            spec,
            output,
            texts=texts,
            pairs=train_pairs,
            config=config,
            cache=EmbeddingCache(lorag_home() / "embeddings.sqlite") if cache else None,
            init_from_teacher=init_from_teacher,
            overwrite=overwrite,
            resume=resume,
            trust_remote_code=trust_remote_code,
        )
    except (ValueError, FileNotFoundError, ModelNotAvailableError, ImportError) as err:  # ImportError: an extra
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    summary = {
        "output": str(result.output_dir),
        "student": result.student,
        "steps": result.steps,
        "train_seconds": round(result.train_seconds, 1),
        "train_loss": round(result.train_loss, 6),
        "eval_losses": result.eval_losses,
    }
    typer.echo(json.dumps(summary, indent=2))

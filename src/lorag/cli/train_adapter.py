"""``lorag train-adapter``: train an adapter (QLoRA by default) from a JSONL file of chats or prompt/completion
pairs, optionally distilled from a teacher model."""

from __future__ import annotations

import json

import typer

from lorag.cli import app
from lorag.models import ModelNotAvailableError


@app.command("train-adapter")
def train_adapter_command(
    base: str = typer.Option(..., "--base", help="Base model: a lorag short name, a local directory or a hub id."),
    data: str = typer.Option(..., "--data", help='JSONL of {"messages": [...]} or {"prompt", "completion"} records.'),
    output: str = typer.Option(..., "--output", help="Directory for the adapter, its metadata and loss curve."),
    method: str = typer.Option(
        "lora", "--method", help="lora, ia3, prompt-tuning, prefix-tuning, bottleneck, full (with --quantization none)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the data (when --max-steps is not given)."),
    quantization: str = typer.Option("nf4", "--quantization", help="How the base is loaded: nf4, int8 or none."),
    quant_storage: str = typer.Option(
        "uint8",
        "--quant-storage",
        help="dtype NF4 weights are stored in: uint8, or for FSDP-QLoRA the FSDP dtype (bfloat16, float16, float32).",
    ),
    rank: int = typer.Option(16, "--rank", help="LoRA rank."),
    lora_alpha: int | None = typer.Option(
        None, "--lora-alpha", help="LoRA alpha (the update is scaled by alpha/rank); 32."
    ),
    dropout: float = typer.Option(0.05, "--dropout", help="LoRA (or bottleneck) dropout."),
    target_modules: str = typer.Option(
        "all-linear", "--target-modules", help="LoRA: 'all-linear' or comma-separated module names (q_proj,v_proj)."
    ),
    num_virtual_tokens: int = typer.Option(20, "--num-virtual-tokens", help="Prompt/prefix tuning: virtual tokens."),
    placement: str = typer.Option("houlsby", "--bottleneck-placement", help="Bottleneck: houlsby or pfeiffer."),
    reduction_factor: int = typer.Option(16, "--reduction-factor", help="Bottleneck width = layer width / this."),
    teacher: str | None = typer.Option(None, "--teacher", help="Distil from this model (same tokenizer as --base)."),
    teacher_adapter: str | None = typer.Option(None, "--teacher-adapter", help="A peft adapter for the teacher."),
    kd_alpha: float | None = typer.Option(
        None,
        "--alpha",
        help="Distillation: a in a*CE + (1-a)*T^2*KL (0.5); without --teacher, LoRA alpha (deprecated).",
    ),
    temperature: float | None = typer.Option(None, "--temperature", help="Distillation temperature T (2.0)."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate."),
    lr_scheduler: str = typer.Option("cosine", "--lr-scheduler", help="cosine, linear, constant, ..."),
    warmup_ratio: float = typer.Option(0.03, "--warmup-ratio", help="Share of the steps spent warming up."),
    batch_size: int = typer.Option(4, "--batch-size", help="Examples per forward pass."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Forward passes per optimizer step."),
    max_length: int | None = typer.Option(None, "--max-length", help="Longest sequence in tokens."),
    overflow: str = typer.Option("truncate", "--overflow", help="Longer sequences: truncate or skip."),
    eval_fraction: float = typer.Option(0.1, "--eval-fraction", help="Share held out for the eval loss (0: none)."),
    eval_steps: int | None = typer.Option(None, "--eval-steps", help="Evaluate and checkpoint every N steps."),
    patience: int | None = typer.Option(
        3, "--early-stopping-patience", help="Evaluations without improvement before stopping (0: never stop early)."
    ),
    seed: int = typer.Option(42, "--seed"),
    bf16: bool = typer.Option(
        False, "--bf16/--no-bf16", help="bfloat16 autocast: faster where bf16 is native (CPUs with AVX512-BF16/AMX)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in OUTPUT/checkpoints."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an adapter already in OUTPUT."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep OUTPUT/checkpoints at the end."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with the loss."),
) -> None:
    """Train an adapter (4-bit QLoRA by default) and save it as a peft adapter with metadata and a loss curve.

    Under ``accelerate launch ... -m lorag train-adapter`` every process trains and the main one writes OUTPUT
    (see the README's "Scaling out" and examples/accelerate/).
    """
    from lorag.losses.llm_distillation import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
    from lorag.training.distributed import MainProcessError
    from lorag.training.qlora import OutputExistsError, QLoRAConfig, train_adapter
    from lorag.training.sft_data import DataFormatError

    try:
        lora_alpha, kd_alpha = _split_alpha(teacher, lora_alpha, kd_alpha, temperature)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    modules: str | list[str] = target_modules
    if target_modules != "all-linear":
        modules = [m.strip() for m in target_modules.split(",") if m.strip()]
    config = QLoRAConfig(
        method=method,
        quantization=quantization,  # type: ignore[arg-type]
        quant_storage=quant_storage,
        rank=rank,
        alpha=QLoRAConfig.alpha if lora_alpha is None else lora_alpha,
        dropout=dropout,
        target_modules=modules,
        num_virtual_tokens=num_virtual_tokens,
        bottleneck_placement=placement,
        reduction_factor=reduction_factor,
        teacher=teacher,
        teacher_adapter=teacher_adapter,
        kd_alpha=DEFAULT_ALPHA if kd_alpha is None else kd_alpha,
        kd_temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
        learning_rate=lr,
        lr_scheduler=lr_scheduler,
        warmup_ratio=warmup_ratio,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        overflow=overflow,  # type: ignore[arg-type]
        eval_fraction=eval_fraction,
        eval_steps=eval_steps,
        early_stopping_patience=patience or None,
        seed=seed,
        bf16=bf16,
        keep_checkpoints=keep_checkpoints,
    )
    try:
        result = train_adapter(base, data, output, config, resume=resume, overwrite=overwrite, show_progress=progress)
    except (
        OutputExistsError,
        DataFormatError,
        FileNotFoundError,
        ModelNotAvailableError,
        ValueError,
        MainProcessError,
    ) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under accelerate launch the main process reports for all
        return
    meta = result.metadata
    summary = {
        key: meta[key]
        for key in ("method", "steps", "final_train_loss", "final_eval_loss", "train_time_s", "stopped_early", "data")
    }
    typer.echo(f"adapter saved to {result.output_dir}")
    typer.echo(json.dumps(summary, indent=2))


def _split_alpha(
    teacher: str | None, lora_alpha: int | None, alpha: float | None, temperature: float | None
) -> tuple[int | None, float | None]:
    """(LoRA alpha, distillation alpha). ``--alpha`` was LoRA's before distillation took the name; without
    ``--teacher`` a whole ``--alpha`` is still read as LoRA's, with a warning, so recorded commands keep working."""
    if teacher is not None or alpha is None:
        if teacher is None and temperature is not None:
            raise ValueError("--temperature softens the teacher's distributions and needs --teacher")
        return lora_alpha, alpha
    if not alpha.is_integer() or alpha < 1 or lora_alpha is not None:
        raise ValueError(
            f"--alpha {alpha:g} without --teacher: --alpha is distillation's CE weight and needs --teacher; "
            "LoRA's alpha is --lora-alpha"
        )
    typer.echo(f"warning: --alpha {alpha:g} without --teacher is read as --lora-alpha {alpha:g}", err=True)
    return int(alpha), None

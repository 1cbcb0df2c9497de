"""Train an adapter (QLoRA by default, or IA3, prompt/prefix tuning, bottleneck adapters, or full fine-tuning),
optionally distilled from a teacher, and save it as a plain peft adapter (a whole model for ``full``).

The default recipe follows the QLoRA paper (Dettmers et al., 2023): the frozen base is quantized to NF4 with double
quantization, and LoRA goes on every linear layer, which the paper found necessary to match full fine-tuning.
The loop is transformers' ``Trainer``: it already does gradient accumulation, LR schedules, evaluation,
early stopping, checkpoints and exact resume (optimizer, scheduler, RNG and data position), and it knows
how to save and reload peft models. lorag adds what a user would otherwise get wrong: completion-only labels
(``sft_data``), input validation, the refuse-to-overwrite rule, and the metadata the adapter registry checks.
The methods are built in ``methods``, the distillation loss in ``kd_trainer``; this module runs them, in one
process or in several under ``accelerate launch`` (``distributed``: only the main process writes the output).

TRL's ``SFTTrainer`` was not used: its assistant-only loss needs chat templates with ``{% generation %}``
markers, which common templates (SmolLM2's, ChatML) lack, so masking would still be ours.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lorag._imports import require
from lorag.fingerprint import directory_fingerprint, file_sha256
from lorag.llm.adapters.format import FINGERPRINT_KEY
from lorag.locking import exclusive
from lorag.models import resolve_model
from lorag.training.config import QUANTIZATIONS, QLoRAConfig, Quantization
from lorag.training.distributed import check_fsdp_storage, on_main, process_state, run_record, save_result
from lorag.training.loading import load_base_model, load_frozen_model
from lorag.training.methods import METHOD_LABELS, count_parameters, make_trainable, reserved_positions
from lorag.training.output import (
    ADAPTER_FILES,
    CHECKPOINT_DIR,
    LOSS_CURVE_FILE,
    METADATA_FILE,
    RUN_CONFIG_FILE,
    OutputExistsError,
    check_output,
    check_resume_identity,
    holds_adapter,
    last_checkpoint,
    run_identity,
    write_json_atomically,
)
from lorag.training.plots import plot_loss_curve
from lorag.training.progress import progress_callback
from lorag.training.sft_data import (
    DataReport,
    SFTCollator,
    TokenizedExample,
    read_sft_jsonl,
    tokenize_records,
)
from lorag.training.teacher import TeacherSpec, load_teacher, resolve_teacher

logger = logging.getLogger(__name__)

__all__ = [
    "ADAPTER_FILES",
    "LOSS_CURVE_FILE",
    "METADATA_FILE",
    "QUANTIZATIONS",
    "OutputExistsError",
    "QLoRAConfig",
    "Quantization",
    "TrainingResult",
    "holds_adapter",
    "load_base_model",
    "train_adapter",
]


@dataclass
class TrainingResult:
    """Where the adapter went and what the run measured."""

    output_dir: Path
    metadata: dict[str, Any]
    data_report: DataReport = field(repr=False)

    @property
    def final_train_loss(self) -> float | None:
        return self.metadata.get("final_train_loss")

    @property
    def final_eval_loss(self) -> float | None:
        return self.metadata.get("final_eval_loss")

    @property
    def steps(self) -> int:
        return int(self.metadata["steps"])


def _split(examples: list[TokenizedExample], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(examples) * fraction) if fraction > 0 else 0
    if fraction > 0 and len(examples) >= 2:
        n_eval = min(max(n_eval, 1), len(examples) - 1)
    rows = [{"input_ids": examples[i].input_ids, "labels": examples[i].labels} for i in order]
    return rows[n_eval:], rows[:n_eval]


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("lorag", "torch", "transformers", "peft", "bitsandbytes"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def train_adapter(
    base: str | os.PathLike[str],
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: QLoRAConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> TrainingResult:
    """Train an adapter on ``base`` from a JSONL file and save it, with metadata and a loss curve, in ``output``.

    Args:
        base: The base model: a lorag short name, a local directory or a hub id (see ``lorag.models``).
        data: JSONL of ``{"messages": [...]}`` or ``{"prompt", "completion"}`` records (see ``sft_data``).
        output: Directory for ``adapter_config.json``, ``adapter_model.safetensors`` (or, for ``method="full"``,
            the whole model and its tokenizer), ``training_metadata.json`` and ``loss_curve.png``; checkpoints
            go to ``output/checkpoints``.
        config: Hyperparameters, the method and the teacher; defaults to ``QLoRAConfig()`` (QLoRA, no teacher).
        resume: Continue the interrupted run whose checkpoints are in ``output/checkpoints``, with the same
            data and settings; its optimizer, scheduler, RNG and data position are restored.
        overwrite: Replace an adapter (or an interrupted run) already in ``output``.
        show_progress: Show a progress bar with the latest loss.
        callbacks: Extra ``transformers.TrainerCallback`` objects (e.g. to log elsewhere).

    Under ``accelerate launch`` every process calls this with the same arguments: they train together, the main
    process alone writes ``output`` (``distributed``), and each returns the same result.

    Raises:
        DirectoryBusyError: another run is writing ``output`` (a second run into it fails at once).
        OutputExistsError: ``output`` holds an adapter (or an interrupted run) and neither ``overwrite``
            nor (for an interrupted run) ``resume`` was given.
        DataFormatError: the data file has empty or malformed lines (all listed by line number).
        ValueError: a setting is out of range, the method cannot train this base (``full`` on a quantized
            one), the teacher's tokenizer differs from the student's, or no example is left after length filtering.

    Nothing in ``output`` changes before the inputs have been checked.
    """
    config = config or QLoRAConfig()
    config.validate()
    out = Path(output)
    procs = process_state()
    with ExitStack() as held:

        def claim() -> None:  # the lock sits beside the output, which stays untouched until the inputs pass
            held.enter_context(exclusive(out, wait=0, beside=True))
            check_output(out, resume=resume, overwrite=overwrite)

        on_main(procs, claim)
        return _train(base, data, out, config, procs, resume, overwrite, show_progress, callbacks)


def _train(
    base: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: Path,
    config: QLoRAConfig,
    procs: Any,
    resume: bool,
    overwrite: bool,
    show_progress: bool,
    callbacks: Sequence[Any],
) -> TrainingResult:
    check_fsdp_storage(config)
    records = read_sft_jsonl(Path(data))
    data_sha = file_sha256(Path(data))
    base_ref = os.fspath(base)
    base_path = resolve_model(base_ref)
    fingerprint = directory_fingerprint(base_path)

    torch = require("torch", purpose="training adapters")
    transformers = require("transformers", purpose="training adapters")

    tokenizer = transformers.AutoTokenizer.from_pretrained(base_path, trust_remote_code=config.trust_remote_code)
    teacher_spec = resolve_teacher(config, tokenizer)
    model_config = transformers.AutoConfig.from_pretrained(base_path, trust_remote_code=config.trust_remote_code)
    context = (getattr(model_config, "max_position_embeddings", None) or 2048) - reserved_positions(config)
    max_length = min(config.max_length or min(context, 2048), context)
    if max_length < 2:
        raise ValueError(
            f"{config.num_virtual_tokens} virtual tokens leave no room in the model's context; "
            "lower num_virtual_tokens (--num-virtual-tokens)"
        )
    examples, report = tokenize_records(tokenizer, records, max_length=max_length, overflow=config.overflow)
    if not examples:
        raise ValueError(
            f"no example fits max_length={max_length} tokens ({report.n_skipped_too_long} skipped); "
            "raise max_length or shorten the examples"
        )
    train_rows, eval_rows = _split(examples, config.eval_fraction, config.seed)

    ckpt_root = out / CHECKPOINT_DIR
    identity = run_identity(base_ref, fingerprint, data_sha, config, teacher_spec, procs.num_processes)

    def prepare_run() -> Path | None:
        resume_from = last_checkpoint(out) if resume else None
        if resume and resume_from is None:
            logger.warning("lorag: resume asked but %s holds no checkpoint; training from the start", ckpt_root)
        if resume_from is not None:
            check_resume_identity(ckpt_root, identity)
        else:
            if overwrite:
                shutil.rmtree(ckpt_root, ignore_errors=True)
            ckpt_root.mkdir(parents=True, exist_ok=True)
            write_json_atomically(ckpt_root / RUN_CONFIG_FILE, identity)
        return resume_from

    resume_from = on_main(procs, prepare_run)

    global_batch = config.batch_size * config.grad_accum * procs.num_processes
    steps_per_epoch = math.ceil(len(train_rows) / global_batch)
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    every = max(1, total_steps // 10)
    eval_steps = config.eval_steps or every
    save_steps = eval_steps if eval_rows else (config.save_steps or every)
    use_early_stopping = bool(eval_rows) and config.early_stopping_patience is not None

    transformers.set_seed(config.seed)
    model = make_trainable(load_base_model(base_path, config), config)
    trainable, total = count_parameters(model)

    args = transformers.TrainingArguments(
        output_dir=str(ckpt_root),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if eval_rows else "no",
        eval_steps=eval_steps if eval_rows else None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=use_early_stopping,
        metric_for_best_model="eval_loss" if use_early_stopping else None,
        greater_is_better=False if use_early_stopping else None,
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=config.bf16,
        dataloader_num_workers=0,
    )
    all_callbacks: list[Any] = list(callbacks)
    if show_progress:  # drawn by the main process only
        all_callbacks.append(progress_callback())
    if use_early_stopping:
        all_callbacks.append(transformers.EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer_kwargs: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": _RowsDataset(train_rows),
        "eval_dataset": _RowsDataset(eval_rows) if eval_rows else None,
        "data_collator": SFTCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        "callbacks": all_callbacks,
    }
    if teacher_spec is not None:
        from lorag.losses.llm_distillation import LLMDistillationLoss
        from lorag.training.kd_trainer import DistillationTrainer

        teacher = load_teacher(teacher_spec, lambda path: load_frozen_model(path, config))
        kd_loss = LLMDistillationLoss(alpha=config.kd_alpha, temperature=config.kd_temperature)
        trainer = DistillationTrainer(teacher=teacher, kd_loss=kd_loss, **trainer_kwargs)
    else:
        trainer = transformers.Trainer(**trainer_kwargs)
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    trainer.remove_callback(transformers.trainer_callback.ProgressCallback)

    resumed_step = 0
    if resume_from is not None:
        resumed_step = int(resume_from.name.rsplit("-", 1)[-1])
        logger.info("lorag: resuming from %s (step %d)", resume_from, resumed_step)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    train_time = time.perf_counter() - started
    final_eval = trainer.evaluate()["eval_loss"] if eval_rows else None

    history = list(trainer.state.log_history)
    train_losses = [row["loss"] for row in history if "loss" in row]
    state = trainer.state
    stopped_early = use_early_stopping and state.global_step < state.max_steps
    metadata: dict[str, Any] = {
        "base_model": base_ref,
        FINGERPRINT_KEY: fingerprint,
        "method": config.method,
        "distillation": _distillation_record(config, teacher_spec),
        "data_path": str(Path(data).resolve()),
        "data_sha256": data_sha,
        "hyperparameters": asdict(config),
        "max_length": max_length,
        "data": report.as_dict(),
        "n_train_examples": len(train_rows),
        "n_eval_examples": len(eval_rows),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_eval_loss": final_eval,
        "best_eval_loss": state.best_metric if use_early_stopping else None,
        "steps": int(state.global_step),
        "max_steps": int(state.max_steps),
        "epochs": float(state.epoch or 0.0),
        "stopped_early": bool(stopped_early),
        "distributed": run_record(trainer, config),
        "resumed_from_step": resumed_step,
        "train_time_s": round(train_time, 2),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "log_history": history,
    }
    save_result(trainer, model, tokenizer, out, base_ref, procs)

    def finish() -> None:
        title = f"{METHOD_LABELS[config.method]} on {Path(base_ref).name}"
        plot_loss_curve(history, out / LOSS_CURVE_FILE, title=title + (" (distilled)" if teacher_spec else ""))
        write_json_atomically(out / METADATA_FILE, metadata)
        if not config.keep_checkpoints:
            shutil.rmtree(ckpt_root, ignore_errors=True)

    on_main(procs, finish)
    logger.info("lorag: %s saved to %s after %d steps", METHOD_LABELS[config.method], out, state.global_step)
    return TrainingResult(output_dir=out, metadata=metadata, data_report=report)


def _distillation_record(config: QLoRAConfig, teacher: TeacherSpec | None) -> dict[str, Any] | None:
    if teacher is None:
        return None
    return {**teacher.as_dict(), "alpha": config.kd_alpha, "temperature": config.kd_temperature}


class _RowsDataset:
    """A list of token rows as a map-style dataset (``Trainer`` needs only ``len`` and indexing)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]

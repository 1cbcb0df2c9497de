"""QLoRA: train a LoRA adapter on a 4-bit (or 8-bit, or full-precision) base model, saved as a plain peft adapter.

The recipe follows the QLoRA paper (Dettmers et al., 2023): the frozen base is quantized to NF4 with double
quantization, and LoRA goes on every linear layer, which the paper found necessary to match full fine-tuning.
The loop is transformers' ``Trainer``: it already does gradient accumulation, LR schedules, evaluation,
early stopping, checkpoints and exact resume (optimizer, scheduler, RNG and data position), and it knows
how to save and reload peft models. lorag adds what a user would otherwise get wrong: completion-only labels
(``sft_data``), input validation, the refuse-to-overwrite rule, and the metadata the adapter registry checks.

TRL's ``SFTTrainer`` was not used: its assistant-only loss needs chat templates with ``{% generation %}``
markers, which common templates (SmolLM2's, ChatML) lack, so masking would still be ours.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from lorag._imports import require
from lorag.fingerprint import directory_fingerprint
from lorag.locking import holding_lock
from lorag.models import resolve_model
from lorag.training.plots import plot_loss_curve
from lorag.training.sft_data import (
    DataReport,
    Overflow,
    SFTCollator,
    TokenizedExample,
    file_sha256,
    read_sft_jsonl,
    tokenize_records,
)

logger = logging.getLogger(__name__)

Quantization = Literal["nf4", "int8", "none"]
QUANTIZATIONS: tuple[str, ...] = ("nf4", "int8", "none")
COMPUTE_DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")

METADATA_FILE = "training_metadata.json"
LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
RUN_CONFIG_FILE = "lorag_run.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class OutputExistsError(FileExistsError):
    """The output directory already holds an adapter or an interrupted run, and overwriting was not asked for."""


@dataclass
class QLoRAConfig:
    """Every setting that changes the trained adapter; stored in ``training_metadata.json`` as ``hyperparameters``.

    Attributes:
        quantization: How the frozen base is loaded: ``"nf4"`` (4-bit NormalFloat, QLoRA), ``"int8"`` or
            ``"none"`` (full precision).
        compute_dtype: dtype of the 4-bit matmuls. ``"auto"`` is float32 on CPU (bfloat16 is slower there
            without AMX) and bfloat16 on a GPU that supports it.
        double_quant: Quantize the NF4 block scales too (QLoRA's double quantization).
        rank: LoRA rank ``r``.
        alpha: LoRA scaling numerator; the update is scaled by ``alpha / rank``.
        dropout: Dropout on the LoRA input.
        target_modules: ``"all-linear"`` (every linear layer but the output head) or a list of module names.
        learning_rate: Peak learning rate.
        lr_scheduler: A transformers scheduler name (``"cosine"``, ``"linear"``, ``"constant"``, ...).
        warmup_ratio: Fraction of the steps spent warming up.
        weight_decay: AdamW weight decay.
        epochs: Passes over the training split (ignored when ``max_steps`` is set).
        max_steps: Stop after this many optimizer steps.
        batch_size: Examples per forward pass.
        grad_accum: Forward passes per optimizer step (effective batch = ``batch_size * grad_accum``).
        max_length: Longest sequence in tokens; longer ones follow ``overflow``. ``None``: the model's context,
            capped at 2048.
        overflow: ``"truncate"`` (cut on the right) or ``"skip"`` an example longer than ``max_length``.
        eval_fraction: Share of the examples held out to compute the eval loss (0 turns evaluation off).
        eval_steps: Evaluate (and checkpoint) every this many steps; ``None``: about ten times per run.
        early_stopping_patience: Stop after this many evaluations without a lower eval loss, and keep the best
            checkpoint's adapter; ``None`` disables it.
        save_steps: Checkpoint every this many steps when there is no eval split; ``None``: about ten times.
        save_total_limit: Checkpoints kept on disk (the best one is always kept).
        logging_steps: Log the training loss every this many steps.
        gradient_checkpointing: Recompute activations in the backward pass to save memory (slower).
        seed: Seed for the split, LoRA initialisation, dropout and data order.
        keep_checkpoints: Keep ``checkpoints/`` after a successful run (they hold optimizer state for resuming).
        trust_remote_code: Allow the base model's own Python code; off unless you trust the model.
        bf16: Train under bfloat16 autocast (weights and LoRA stay float32). Fast only where the hardware
            multiplies bf16 natively (CUDA, CPUs with AVX512-BF16 or AMX); meant for ``quantization="none"``.
    """

    quantization: Quantization = "nf4"
    compute_dtype: str = "auto"
    double_quant: bool = True
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | None = None
    overflow: Overflow = "truncate"
    eval_fraction: float = 0.1
    eval_steps: int | None = None
    early_stopping_patience: int | None = 3
    save_steps: int | None = None
    save_total_limit: int = 2
    logging_steps: int = 1
    gradient_checkpointing: bool = False
    seed: int = 42
    keep_checkpoints: bool = False
    trust_remote_code: bool = False
    bf16: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range (and the valid choices)."""
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}; got {self.quantization!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {self.compute_dtype!r}")
        if self.overflow not in ("truncate", "skip"):
            raise ValueError(f"overflow must be 'truncate' or 'skip'; got {self.overflow!r}")
        positive = {
            "rank": self.rank,
            "alpha": self.alpha,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name, opt in {
            "max_steps": self.max_steps,
            "eval_steps": self.eval_steps,
            "save_steps": self.save_steps,
            "max_length": self.max_length,
            "early_stopping_patience": self.early_stopping_patience,
        }.items():
            if opt is not None and (not isinstance(opt, int) or opt < 1):
                raise ValueError(f"{name} must be a positive integer or None; got {opt!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1); got {self.eval_fraction}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1); got {self.warmup_ratio}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}")
        if self.max_steps is None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive when max_steps is not set; got {self.epochs}")
        if self.save_total_limit < 1 or self.logging_steps < 1:
            raise ValueError("save_total_limit and logging_steps must be at least 1")
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            raise ValueError(
                f"target_modules must be 'all-linear' or a list of module names; got {self.target_modules!r}"
            )


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


# --------------------------------------------------------------------------- output directory rules


def holds_adapter(path: str | Path) -> bool:
    """True when ``path`` already holds a saved adapter (any of the peft files or lorag's metadata)."""
    p = Path(path)
    return any((p / name).exists() for name in (*ADAPTER_FILES, METADATA_FILE))


def _last_checkpoint(output: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_root = output / CHECKPOINT_DIR
    if not ckpt_root.is_dir():
        return None
    last = get_last_checkpoint(str(ckpt_root))
    return Path(last) if last else None


def _check_output(output: Path, *, resume: bool, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"output {str(output)!r} is a file; give a directory for the adapter")
    if not output.exists() or overwrite:
        return
    if holds_adapter(output) and not resume:
        raise OutputExistsError(
            f"{str(output)!r} already holds an adapter; pass overwrite=True (--overwrite) to replace it, "
            "or choose another output directory"
        )
    if holds_adapter(output) and resume:
        raise OutputExistsError(
            f"{str(output)!r} holds a finished adapter, so there is no interrupted run to resume; "
            "pass overwrite=True (--overwrite) to train it again"
        )
    if _last_checkpoint(output) is not None and not resume:
        raise OutputExistsError(
            f"{str(output)!r} holds checkpoints of an interrupted run; pass resume=True (--resume) to continue it "
            "or overwrite=True (--overwrite) to start over"
        )


# --------------------------------------------------------------------------- model loading


def _compute_dtype(name: str) -> Any:
    import torch

    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_base_model(path: str, config: QLoRAConfig) -> Any:
    """The frozen base, quantized as ``config`` says and prepared for k-bit training where that applies."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    peft = require("peft", purpose="LoRA adapters")
    dtype = _compute_dtype(config.compute_dtype)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.quantization == "nf4":
        require("bitsandbytes", purpose="4-bit quantization")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=config.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
    elif config.quantization == "int8":
        require("bitsandbytes", purpose="8-bit quantization")
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if config.quantization != "none" and torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    if config.quantization != "none":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model


# --------------------------------------------------------------------------- progress


def _progress_callback() -> Any:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossProgressCallback(TrainerCallback):  # type: ignore[misc]
        """One tqdm bar over optimizer steps, showing the latest train and eval loss."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.postfix: dict[str, str] = {}

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training adapter", unit="step")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if self.bar is None or not logs:
                return
            for key in ("loss", "eval_loss"):
                if key in logs:
                    self.postfix[key] = f"{logs[key]:.4f}"
            self.bar.set_postfix(self.postfix, refresh=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return LossProgressCallback()


# --------------------------------------------------------------------------- training


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


def _run_identity(base: str, fingerprint: str, data_sha: str, config: QLoRAConfig) -> dict[str, Any]:
    hp = asdict(config)
    hp.pop("keep_checkpoints")
    return {"base_model_fingerprint": fingerprint, "data_sha256": data_sha, "hyperparameters": hp, "base_model": base}


def _check_resume_identity(ckpt_root: Path, identity: dict[str, Any]) -> None:
    stored_path = ckpt_root / RUN_CONFIG_FILE
    if not stored_path.is_file():
        return
    stored = json.loads(stored_path.read_text())
    diffs = [k for k in ("base_model_fingerprint", "data_sha256") if stored.get(k) != identity[k]]
    diffs += [
        f"hyperparameters.{k}"
        for k in identity["hyperparameters"]
        if stored.get("hyperparameters", {}).get(k) != identity["hyperparameters"][k]
    ]
    if diffs:
        raise ValueError(
            f"cannot resume: the interrupted run in {str(ckpt_root)!r} used a different {', '.join(diffs)}; "
            "resume with the same settings, or pass overwrite=True to start over"
        )


def _save_adapter_atomically(model: Any, output: Path, base_reference: str) -> None:
    """Write the adapter into a temp dir beside the output, then move the files in, so no half adapter is seen."""
    output.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=output))
    try:
        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = base_reference
        model.save_pretrained(str(tmp), safe_serialization=True)
        for item in tmp.iterdir():
            os.replace(item, output / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@holding_lock("output")  # a second run into the same output fails at once
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
    """Train a LoRA adapter on ``base`` from a JSONL file and save it, with metadata and a loss curve, in ``output``.

    Args:
        base: The base model: a lorag short name, a local directory or a hub id (see ``lorag.models``).
        data: JSONL of ``{"messages": [...]}`` or ``{"prompt", "completion"}`` records (see ``sft_data``).
        output: Directory for ``adapter_config.json``, ``adapter_model.safetensors``,
            ``training_metadata.json`` and ``loss_curve.png``; checkpoints go to ``output/checkpoints``.
        config: Hyperparameters; defaults to ``QLoRAConfig()``.
        resume: Continue the interrupted run whose checkpoints are in ``output/checkpoints``, with the same
            data and settings; its optimizer, scheduler, RNG and data position are restored.
        overwrite: Replace an adapter (or an interrupted run) already in ``output``.
        show_progress: Show a progress bar with the latest loss.
        callbacks: Extra ``transformers.TrainerCallback`` objects (e.g. to log elsewhere).

    Raises:
        OutputExistsError: ``output`` holds an adapter (or an interrupted run) and neither ``overwrite``
            nor (for an interrupted run) ``resume`` was given.
        DataFormatError: the data file has empty or malformed lines (all listed by line number).
        ValueError: a setting is out of range, or no example is left after length filtering.

    Nothing in ``output`` changes before the inputs have been checked.
    """
    config = config or QLoRAConfig()
    config.validate()
    out = Path(output)
    _check_output(out, resume=resume, overwrite=overwrite)
    records = read_sft_jsonl(Path(data))
    data_sha = file_sha256(Path(data))
    base_ref = os.fspath(base)
    base_path = resolve_model(base_ref)
    fingerprint = directory_fingerprint(base_path)

    torch = require("torch", purpose="training adapters")
    transformers = require("transformers", purpose="training adapters")
    peft = require("peft", purpose="LoRA adapters")

    tokenizer = transformers.AutoTokenizer.from_pretrained(base_path, trust_remote_code=config.trust_remote_code)
    model_config = transformers.AutoConfig.from_pretrained(base_path, trust_remote_code=config.trust_remote_code)
    context = getattr(model_config, "max_position_embeddings", None) or 2048
    max_length = min(config.max_length or min(context, 2048), context)
    examples, report = tokenize_records(tokenizer, records, max_length=max_length, overflow=config.overflow)
    if not examples:
        raise ValueError(
            f"no example fits max_length={max_length} tokens ({report.n_skipped_too_long} skipped); "
            "raise max_length or shorten the examples"
        )
    train_rows, eval_rows = _split(examples, config.eval_fraction, config.seed)

    ckpt_root = out / CHECKPOINT_DIR
    identity = _run_identity(base_ref, fingerprint, data_sha, config)
    resume_from = _last_checkpoint(out) if resume else None
    if resume and resume_from is None:
        logger.warning("lorag: resume asked but %s holds no checkpoint; training from the start", ckpt_root)
    if resume_from is not None:
        _check_resume_identity(ckpt_root, identity)
    else:
        if overwrite:
            shutil.rmtree(ckpt_root, ignore_errors=True)
        ckpt_root.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(ckpt_root / RUN_CONFIG_FILE, identity)

    steps_per_epoch = math.ceil(len(train_rows) / (config.batch_size * config.grad_accum))
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    every = max(1, total_steps // 10)
    eval_steps = config.eval_steps or every
    save_steps = eval_steps if eval_rows else (config.save_steps or every)
    use_early_stopping = bool(eval_rows) and config.early_stopping_patience is not None

    transformers.set_seed(config.seed)
    model = load_base_model(base_path, config)
    lora = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()

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
    if show_progress:
        all_callbacks.append(_progress_callback())
    if use_early_stopping:
        all_callbacks.append(transformers.EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=_RowsDataset(train_rows),
        eval_dataset=_RowsDataset(eval_rows) if eval_rows else None,
        data_collator=SFTCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        callbacks=all_callbacks,
    )
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
        "base_model_fingerprint": fingerprint,
        "data_path": str(Path(data).resolve()),
        "data_sha256": data_sha,
        "hyperparameters": asdict(config),
        "max_length": max_length,
        "data": report.as_dict(),
        "n_train_examples": len(train_rows),
        "n_eval_examples": len(eval_rows),
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_eval_loss": final_eval,
        "best_eval_loss": state.best_metric if use_early_stopping else None,
        "steps": int(state.global_step),
        "max_steps": int(state.max_steps),
        "epochs": float(state.epoch or 0.0),
        "stopped_early": bool(stopped_early),
        "resumed_from_step": resumed_step,
        "train_time_s": round(train_time, 2),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "log_history": history,
    }
    _save_adapter_atomically(model, out, base_ref)
    plot_loss_curve(history, out / LOSS_CURVE_FILE, title=f"LoRA on {Path(base_ref).name}")
    _write_json_atomically(out / METADATA_FILE, metadata)
    if not config.keep_checkpoints:
        shutil.rmtree(ckpt_root, ignore_errors=True)
    logger.info("lorag: adapter saved to %s after %d steps", out, state.global_step)
    return TrainingResult(output_dir=out, metadata=metadata, data_report=report)


class _RowsDataset:
    """A list of token rows as a map-style dataset (``Trainer`` needs only ``len`` and indexing)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]

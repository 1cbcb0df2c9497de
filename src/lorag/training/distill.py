"""Distil a sentence-transformers teacher into a smaller, faster student embedder.

Built on sentence-transformers' ``SentenceTransformerTrainer`` (a ``transformers.Trainer``): it brings the
progress bar, checkpoints (and resuming), evaluation during training (the held-out loss plus any
sentence-transformers evaluator) and saving as a sentence-transformers model directory (safetensors), so
this module only prepares the teacher's targets, the student and the loss. The teacher runs once over the
training texts (through ``lorag.embedding.Embedder``, so an ``EmbeddingCache`` makes repeated runs free); the
student then learns from those fixed targets with ``lorag.losses.EmbeddingDistillationLoss``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding import Embedder, EmbeddingCache, calibration_sample
from lorag.embedding.onnx_backend import BACKENDS, Backend
from lorag.locking import holding_lock
from lorag.losses.distillation import DEFAULT_ALPHA, DEFAULT_MSE_WEIGHT, DEFAULT_TEMPERATURE
from lorag.training.students import StudentSpec, build_student, parse_student_spec, pca_projection

logger = logging.getLogger(__name__)

#: Learning rates by student kind when ``DistillConfig.learning_rate`` is None: transformer students fine-tune
#: pretrained weights; a static student's token vectors move by mean-pooled gradients and need larger steps.
DEFAULT_LEARNING_RATES = {"layers": 1e-4, "model": 1e-4, "static": 1e-2}


@dataclass
class DistillConfig:
    """Training settings; every field has a default that works on a CPU.

    Args:
        alpha: weight of the hard-target CE (only with pairs); ``1 - alpha`` weighs the soft-target KL.
        temperature: softmax temperature over cosine similarities, for teacher and student.
        mse_weight: weight of the MSE between unit student and teacher embeddings.
        dimension: reduce the output to this many dimensions (PCA of the teacher's embeddings of the training
            texts, which the student then learns to reproduce); None keeps the teacher's width.
        epochs: passes over the data (ignored when ``max_steps`` > 0).
        max_steps: stop after this many optimizer steps (-1: run ``epochs``).
        batch_size: texts (or pairs) per step; also the number of in-batch candidates for KL and CE.
        learning_rate: None picks ``DEFAULT_LEARNING_RATES`` by student kind.
        warmup_ratio: share of the steps with a linearly rising learning rate.
        max_seq_length: truncate training texts to this many tokens (faster steps); the saved student keeps the
            teacher's limit for inference.
        bf16: train a transformer student under bfloat16 autocast (weights stay float32). None: on where the
            hardware multiplies bf16 natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), where it
            makes steps about twice as fast; off for static students, whose steps are lookups.
        group_by_length: batch texts of similar length together (``LengthGroupedBatchSampler``), so short texts
            mixed into long documents (sentences, queries) do not pay for padding to the longest of their batch.
            None: on for transformer students; off for static ones, which pad nothing.
        eval_fraction: share of the texts held out to report the distillation loss during training (at least
            one batch; none when there are fewer than 20 texts).
        eval_steps: evaluate every this many steps; None: four times per run.
        save_steps: checkpoint every this many steps; None: at each evaluation.
        save_total_limit: checkpoints kept on disk.
        keep_checkpoints: keep ``OUTPUT/checkpoints`` after a successful run (otherwise removed).
        seed: shuffling, the held-out split and initialisation.
        teacher_batch_size: batch size for embedding the texts with the teacher.
        teacher_backend: what computes the teacher's targets (``Embedder`` backends). ``openvino`` (int8, calibrated
            on a sample of the training texts) is 3-5x faster than ``torch`` on a CPU, with the float teacher's
            retrieval quality in ``benchmarks/distill.py``, so the same time teaches the student on more texts.
        show_progress: progress bars (teacher pass and training).
    """

    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    mse_weight: float = DEFAULT_MSE_WEIGHT
    dimension: int | None = None
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    max_seq_length: int | None = None
    bf16: bool | None = None
    group_by_length: bool | None = None
    eval_fraction: float = 0.05
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    seed: int = 42
    teacher_batch_size: int = 32
    teacher_backend: Backend = "torch"
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (in-batch similarities), got {self.batch_size}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be positive, or -1 to run whole epochs; got {self.max_steps}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.dimension is not None and self.dimension <= 0:
            raise ValueError(f"dimension must be positive, got {self.dimension}")
        if self.teacher_backend not in BACKENDS:
            raise ValueError(f"unknown teacher_backend {self.teacher_backend!r}; choose one of {', '.join(BACKENDS)}")


@dataclass
class DistillResult:
    """What a run produced: the student directory and how training went."""

    output_dir: Path
    student: str
    steps: int
    teacher_seconds: float  # the teacher's targets for the training texts (cached ones cost nothing)
    train_seconds: float  # the optimisation steps
    total_seconds: float  # the whole run: teacher targets, building the student, training, saving
    train_loss: float
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    model: Any = field(default=None, repr=False)


def bf16_is_native(device: str) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware (else autocast to bf16 emulates it and only slows down)."""
    torch = require("torch")
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up defensively
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _check_output(output_dir: Path, overwrite: bool, resume: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {str(output_dir)!r} is a file; give a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (overwrite or resume):
        raise ValueError(f"output directory {str(output_dir)!r} is not empty; pass overwrite=True (--overwrite)")


@holding_lock("output_dir")  # a second run into the same output fails at once
def distill(
    teacher: str,
    student: str | StudentSpec,
    output_dir: str | Path,
    *,
    texts: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    config: DistillConfig | None = None,
    cache: EmbeddingCache | None = None,
    evaluator: Any = None,
    init_from_teacher: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    trust_remote_code: bool = False,
) -> DistillResult:
    """Train a student of ``teacher`` and save it to ``output_dir`` as a sentence-transformers model.

    Args:
        teacher: a model reference (short name, directory, hub id) of any sentence-transformers model.
        student: ``layers:K``, ``static`` or a model reference (see ``lorag.training.students``).
        output_dir: where the student is saved; must be empty unless ``overwrite`` or ``resume``.
        texts: unlabeled training texts (the default mode: soft targets and MSE).
        pairs: (query, positive) pairs: adds the hard-target CE; the KL then runs over in-batch positives.
        config: training settings (``DistillConfig``).
        cache: an ``EmbeddingCache`` for the teacher's embeddings of the training texts.
        evaluator: a sentence-transformers evaluator run at each evaluation (e.g. ``InformationRetrievalEvaluator``
            on held-out queries).
        init_from_teacher: start a model student's token embeddings from the teacher's (same tokenizer needed).
        overwrite: replace a non-empty ``output_dir``.
        resume: continue from the last checkpoint in ``output_dir/checkpoints``.
        trust_remote_code: allow code shipped with hub models to run.

    Raises:
        ValueError: a student spec that does not parse, too little data, both or neither of texts and pairs,
            a non-empty output, or (with ``init_from_teacher``) different tokenizers. Checked before any model
            is loaded or any file written.
    """
    cfg = config or DistillConfig()
    spec = parse_student_spec(student) if isinstance(student, str) else student
    if (texts is None) == (pairs is None):
        raise ValueError("give either texts (unlabeled, the default) or pairs ((query, positive)), not both")
    rows: list[Any] = [t for t in texts if t and t.strip()] if texts is not None else list(pairs or [])
    if len(rows) < 2:
        raise ValueError(f"distillation needs at least 2 non-empty training texts or pairs, got {len(rows)}")
    out = Path(output_dir)
    _check_output(out, overwrite, resume)
    st = require("sentence_transformers", purpose="embedding distillation")
    datasets = require("datasets", purpose="embedding distillation")
    from lorag.losses import EmbeddingDistillationLoss

    started = time.perf_counter()
    corpus_texts = [text for pair in rows for text in pair] if pairs is not None else rows
    teacher_embedder = Embedder(
        teacher,
        batch_size=cfg.teacher_batch_size,
        cache=cache,
        show_progress=cfg.show_progress,
        trust_remote_code=trust_remote_code,
        backend=cfg.teacher_backend,
        calibration=calibration_sample(corpus_texts) if cfg.teacher_backend == "openvino" else None,
    )
    targets = teacher_embedder.embed_documents(corpus_texts)
    if pairs is not None:
        targets = targets.reshape(len(rows), 2, -1)
    teacher_seconds = time.perf_counter() - started

    projection = None
    if cfg.dimension is not None and cfg.dimension != targets.shape[-1]:
        projection = pca_projection(targets.reshape(-1, targets.shape[-1]), cfg.dimension)
        components, mean = projection
        targets = (targets - mean) @ components.T
    model = build_student(
        spec,
        teacher_embedder.model,
        projection=projection,
        texts=corpus_texts if spec.kind == "static" else None,
        init_from_teacher=init_from_teacher,
        trust_remote_code=trust_remote_code,
        show_progress=cfg.show_progress,
    )
    inference_length = model.max_seq_length
    logger.info("lorag: student %s, %d training rows", spec, len(rows))
    if cfg.max_seq_length is not None and spec.kind != "static":
        model.max_seq_length = cfg.max_seq_length

    order = np.random.default_rng(cfg.seed).permutation(len(rows))
    n_eval = 0 if len(rows) < 20 or cfg.eval_fraction == 0 else max(2, math.ceil(cfg.eval_fraction * len(rows)))
    n_eval = min(n_eval, len(rows) - 2)

    def dataset(idx: np.ndarray) -> Any:
        label = targets[idx].astype(np.float32).tolist()
        if pairs is not None:
            return datasets.Dataset.from_dict(
                {"query": [rows[i][0] for i in idx], "positive": [rows[i][1] for i in idx], "label": label}
            )
        return datasets.Dataset.from_dict({"text": [rows[i] for i in idx], "label": label})

    train_set = dataset(order[n_eval:])
    eval_set = dataset(order[:n_eval]) if n_eval else None
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(steps_per_epoch * cfg.epochs))
    eval_steps = cfg.eval_steps or max(1, total // 4)
    save_steps = cfg.save_steps or eval_steps
    has_eval = eval_set is not None or evaluator is not None
    checkpoints = out / "checkpoints"
    sampler: Any = "batch_sampler"
    if cfg.group_by_length if cfg.group_by_length is not None else spec.kind != "static":
        from lorag.training.length_batches import LengthGroupedBatchSampler

        sampler = LengthGroupedBatchSampler
    args = st.SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate or DEFAULT_LEARNING_RATES[spec.kind],
        warmup_steps=math.ceil(cfg.warmup_ratio * total),
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=max(1, min(eval_steps, 10)),
        seed=cfg.seed,
        disable_tqdm=not cfg.show_progress,
        report_to="none",
        use_cpu=str(model.device) == "cpu",
        bf16=cfg.bf16 if cfg.bf16 is not None else spec.kind != "static" and bf16_is_native(str(model.device)),
        batch_sampler=sampler,
    )
    loss = EmbeddingDistillationLoss(model, alpha=cfg.alpha, temperature=cfg.temperature, mse_weight=cfg.mse_weight)
    trainer = st.SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set, loss=loss, evaluator=evaluator
    )
    if not cfg.show_progress:  # without bars, transformers prints each log dict to stdout instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resume_from = resume and checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    train_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=True if resume_from else None)
    train_seconds = time.perf_counter() - train_started
    # Mixed precision wraps the model's forward in autocast; the returned student must embed in float32 as saved.
    model = trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)

    if spec.kind != "static":
        model.max_seq_length = inference_length
    if overwrite and out.is_dir():
        for child in out.iterdir():
            if child.name != "checkpoints":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    model.save(str(out))
    eval_losses = [(int(r["step"]), float(r["eval_loss"])) for r in trainer.state.log_history if "eval_loss" in r]
    result = DistillResult(
        output_dir=out,
        student=spec.kind if spec.kind != "layers" else f"layers:{spec.layers}",
        steps=int(trainer.state.global_step),
        teacher_seconds=teacher_seconds,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - started,
        train_loss=float(output.training_loss),
        eval_losses=eval_losses,
        model=model,
    )
    record = {
        "teacher": teacher,
        "teacher_fingerprint": teacher_embedder.fingerprint,
        "student": spec.model if spec.kind == "model" else result.student,
        "mode": "pairs" if pairs is not None else "texts",
        "examples": len(rows),
        "config": asdict(cfg),
        "steps": result.steps,
        "teacher_seconds": round(teacher_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(result.total_seconds, 2),
        "train_loss": result.train_loss,
        "eval_losses": eval_losses,
    }
    (out / "lorag_distill.json").write_text(json.dumps(record, indent=2))
    if not cfg.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return result

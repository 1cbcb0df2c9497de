"""``QLoRAConfig``: every setting of an adapter training run, validated before anything is loaded or written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lorag.training.sft_data import Overflow

Quantization = Literal["nf4", "int8", "none"]
QUANTIZATIONS: tuple[str, ...] = ("nf4", "int8", "none")
COMPUTE_DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
#: dtypes the packed 4-bit weights can be stored in. ``uint8`` is bitsandbytes' default; FSDP shards only float
#: tensors, so FSDP-QLoRA needs a float one (bitsandbytes' FSDP-QLoRA guide).
QUANT_STORAGES: tuple[str, ...] = ("uint8", "bfloat16", "float16", "float32")

#: Training methods, cheapest state first within each family; ``full`` is the reference that trains every weight.
METHODS: tuple[str, ...] = ("lora", "ia3", "prompt-tuning", "prefix-tuning", "bottleneck", "full")
#: Methods that prepend trained virtual tokens, which take room in the model's context.
VIRTUAL_TOKEN_METHODS: tuple[str, ...] = ("prompt-tuning", "prefix-tuning")
BOTTLENECK_PLACEMENTS: tuple[str, ...] = ("houlsby", "pfeiffer")


@dataclass
class QLoRAConfig:
    """Every setting that changes the trained adapter; stored in ``training_metadata.json`` as ``hyperparameters``.

    Attributes:
        method: What trains: ``"lora"`` (QLoRA on a 4-bit base), ``"ia3"``, ``"prompt-tuning"``,
            ``"prefix-tuning"``, ``"bottleneck"`` (see ``lorag.peft_bottleneck``) or ``"full"`` (every weight of a
            full-precision base; saved as a whole model).
        quantization: How the frozen base is loaded: ``"nf4"`` (4-bit NormalFloat, QLoRA), ``"int8"`` or
            ``"none"`` (full precision).
        compute_dtype: dtype of the 4-bit matmuls. ``"auto"`` is float32 on CPU (bfloat16 is slower there
            without AMX) and bfloat16 on a GPU that supports it.
        double_quant: Quantize the NF4 block scales too (QLoRA's double quantization).
        quant_storage: dtype the packed NF4 weights are stored in (bitsandbytes' ``bnb_4bit_quant_storage``):
            ``"uint8"`` (default) or, for FSDP-QLoRA, the float dtype FSDP shards in (``"bfloat16"`` with
            ``mixed_precision: bf16``). A float storage loads the whole model in that dtype, so ``compute_dtype``
            must be ``"auto"`` or the same dtype, and the layer norms are not upcast to float32 as they are
            otherwise (FSDP wraps a layer only when its parameters share one dtype).
        rank: LoRA rank ``r``.
        alpha: LoRA scaling numerator; the update is scaled by ``alpha / rank``.
        dropout: Dropout on the LoRA (or bottleneck) input.
        target_modules: LoRA only: ``"all-linear"`` (every linear layer but the output head) or a list of module
            names. IA3 uses peft's per-architecture targets (keys, values, feed-forward), as its paper does.
        num_virtual_tokens: Trained virtual tokens for prompt and prefix tuning.
        bottleneck_placement: ``"houlsby"`` (after attention and feed-forward) or ``"pfeiffer"`` (feed-forward).
        reduction_factor: Bottleneck width is the layer width divided by this.
        teacher: Knowledge distillation: the teacher model (short name, directory or hub id); ``None``: plain SFT.
        teacher_adapter: A peft adapter directory put on the teacher.
        kd_alpha: ``a`` in ``a * CE + (1 - a) * T^2 * KL``, in [0, 1].
        kd_temperature: ``T`` softening both distributions; positive.
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
        seed: Seed for the split, adapter initialisation, dropout and data order.
        keep_checkpoints: Keep ``checkpoints/`` after a successful run (they hold optimizer state for resuming).
        trust_remote_code: Allow the base model's own Python code; off unless you trust the model.
        bf16: Train under bfloat16 autocast (weights and adapters stay float32). Fast only where the hardware
            multiplies bf16 natively (CUDA, CPUs with AVX512-BF16 or AMX); meant for ``quantization="none"``.
    """

    method: str = "lora"
    quantization: Quantization = "nf4"
    compute_dtype: str = "auto"
    double_quant: bool = True
    quant_storage: str = "uint8"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    num_virtual_tokens: int = 20
    bottleneck_placement: str = "houlsby"
    reduction_factor: int = 16
    teacher: str | None = None
    teacher_adapter: str | None = None
    kd_alpha: float = 0.5
    kd_temperature: float = 2.0
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
        self._validate_method()
        self._validate_distillation()
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}; got {self.quantization!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {self.compute_dtype!r}")
        self._validate_quant_storage()
        if self.overflow not in ("truncate", "skip"):
            raise ValueError(f"overflow must be 'truncate' or 'skip'; got {self.overflow!r}")
        positive = {
            "rank": self.rank,
            "alpha": self.alpha,
            "num_virtual_tokens": self.num_virtual_tokens,
            "reduction_factor": self.reduction_factor,
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

    def _validate_method(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.method == "full" and self.quantization != "none":
            raise ValueError(
                f"method 'full' trains every weight, which a base loaded as {self.quantization} cannot hold or save: "
                "load the base in full precision with quantization='none' (--quantization none), "
                "or train an adapter on the quantized base (--method lora for QLoRA)"
            )
        if self.method != "lora" and self.target_modules != "all-linear":
            raise ValueError(
                f"target_modules applies to method 'lora' only; method {self.method!r} places its own parameters"
            )
        if self.bottleneck_placement not in BOTTLENECK_PLACEMENTS:
            raise ValueError(
                f"bottleneck_placement must be one of {', '.join(BOTTLENECK_PLACEMENTS)}; "
                f"got {self.bottleneck_placement!r}"
            )

    def _validate_quant_storage(self) -> None:
        if self.quant_storage not in QUANT_STORAGES:
            raise ValueError(
                f"quant_storage (--quant-storage) must be one of {', '.join(QUANT_STORAGES)}; "
                f"got {self.quant_storage!r}"
            )
        if self.quant_storage == "uint8":
            return
        if self.quantization != "nf4":
            raise ValueError(
                f"quant_storage (--quant-storage) {self.quant_storage!r} stores 4-bit weights and needs "
                f"quantization='nf4'; got quantization={self.quantization!r}"
            )
        if self.compute_dtype not in ("auto", self.quant_storage):
            raise ValueError(
                f"quant_storage {self.quant_storage!r} loads the model in {self.quant_storage}, so compute_dtype "
                f"must be 'auto' or {self.quant_storage!r} too (FSDP wraps a layer only when its parameters share "
                f"one dtype); got compute_dtype={self.compute_dtype!r}"
            )

    def _validate_distillation(self) -> None:
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise ValueError(f"kd_alpha (--alpha) must be in [0, 1]; got {self.kd_alpha}")
        if not self.kd_temperature > 0:
            raise ValueError(f"kd_temperature (--temperature) must be positive; got {self.kd_temperature}")
        if self.teacher_adapter is not None and self.teacher is None:
            raise ValueError("teacher_adapter (--teacher-adapter) needs a teacher (--teacher) to put it on")

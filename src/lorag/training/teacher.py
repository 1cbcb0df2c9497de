"""The distillation teacher: checked against the student before anything is written, then loaded frozen.

Distillation compares the two models' next-token distributions logit by logit, so both must read the same token
ids and mean the same token by each logit: the tokenizers' vocabularies must be equal, not merely the same size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag.fingerprint import directory_fingerprint
from lorag.models import resolve_model
from lorag.training.config import QLoRAConfig
from lorag.training.output import ADAPTER_FILES


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher that passed the checks: where its files are, and their fingerprints for metadata and resume."""

    reference: str
    path: str
    fingerprint: str
    adapter: str | None
    adapter_fingerprint: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.reference,
            "teacher_fingerprint": self.fingerprint,
            "teacher_adapter": self.adapter,
            "teacher_adapter_fingerprint": self.adapter_fingerprint,
        }


def check_shared_tokenizer(student_tokenizer: Any, teacher_tokenizer: Any, teacher: str) -> None:
    """Raise ValueError unless both tokenizers map the same strings to the same ids."""
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student_vocab == teacher_vocab:
        return
    differing = sorted(set(student_vocab.items()) ^ set(teacher_vocab.items()), key=lambda kv: kv[1])[:3]
    raise ValueError(
        f"teacher {teacher!r} has another tokenizer than the student ({len(teacher_vocab)} vs "
        f"{len(student_vocab)} tokens; e.g. {', '.join(f'{t!r}={i}' for t, i in differing)}): distillation "
        "compares the two models' distributions token by token, so choose a teacher from the student's family "
        "(the same tokenizer)"
    )


def _check_adapter_dir(adapter: str) -> Path:
    path = Path(adapter)
    missing = [name for name in ADAPTER_FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"teacher adapter {adapter!r} lacks {', '.join(missing)}: give a peft adapter directory saved as "
            "safetensors (lorag never loads pickled adapter_model.bin)"
        )
    return path


def resolve_teacher(config: QLoRAConfig, student_tokenizer: Any) -> TeacherSpec | None:
    """Check ``config.teacher`` (and its adapter) against the student's tokenizer; ``None`` without a teacher."""
    if config.teacher is None:
        return None
    from transformers import AutoTokenizer

    path = resolve_model(config.teacher)
    adapter = _check_adapter_dir(config.teacher_adapter) if config.teacher_adapter is not None else None
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    check_shared_tokenizer(student_tokenizer, tokenizer, config.teacher)
    return TeacherSpec(
        reference=config.teacher,
        path=path,
        fingerprint=directory_fingerprint(path),
        adapter=str(adapter) if adapter is not None else None,
        adapter_fingerprint=directory_fingerprint(adapter) if adapter is not None else None,
    )


def load_teacher(spec: TeacherSpec, load_frozen: Any) -> Any:
    """The teacher model, loaded by ``load_frozen(path)`` (as the base is), its adapter on, frozen and in eval."""
    model = load_frozen(spec.path)
    if spec.adapter is not None:
        from peft import PeftModel

        import lorag.peft_bottleneck  # noqa: F401  # a bottleneck teacher adapter needs the method registered

        model = PeftModel.from_pretrained(model, spec.adapter, is_trainable=False)
    model.requires_grad_(False)
    return model.eval()

"""The output directory's rules: what counts as a finished run, refusing to overwrite, what a resumed run must
share with the interrupted one, and atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorag.atomic import write_atomically
from lorag.llm.adapters.format import CONFIG_FILE, FINGERPRINT_KEY, METADATA_FILE, SAFETENSORS_FILE
from lorag.training.config import QLoRAConfig

if TYPE_CHECKING:
    from lorag.training.teacher import TeacherSpec

LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
RUN_CONFIG_FILE = "lorag_run.json"
#: The pickled ``TrainingArguments`` that ``Trainer.save_model`` writes beside the weights.
TRAINER_ARGS_FILE = "training_args.bin"
ADAPTER_FILES = (CONFIG_FILE, SAFETENSORS_FILE)
#: The weights ``method="full"`` writes instead of an adapter (with the model's config and tokenizer): one file,
#: or shards listed in the index.
FULL_MODEL_FILES = ("model.safetensors", "model.safetensors.index.json")


class OutputExistsError(FileExistsError):
    """The output directory already holds an adapter or an interrupted run, and overwriting was not asked for."""


def holds_adapter(path: str | Path) -> bool:
    """True when ``path`` already holds a trained result (peft files, a full model, or lorag's metadata)."""
    p = Path(path)
    return any((p / name).exists() for name in (*ADAPTER_FILES, *FULL_MODEL_FILES, METADATA_FILE))


def last_checkpoint(output: Path) -> Path | None:
    """The newest ``checkpoint-N`` under ``output/checkpoints``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_root = output / CHECKPOINT_DIR
    if not ckpt_root.is_dir():
        return None
    last = get_last_checkpoint(str(ckpt_root))
    return Path(last) if last else None


def check_output(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Raise ``OutputExistsError`` unless training into ``output`` is what was asked for."""
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
    if last_checkpoint(output) is not None and not resume:
        raise OutputExistsError(
            f"{str(output)!r} holds checkpoints of an interrupted run; pass resume=True (--resume) to continue it "
            "or overwrite=True (--overwrite) to start over"
        )


def run_identity(
    base: str, fingerprint: str, data_sha: str, config: QLoRAConfig, teacher: TeacherSpec | None, processes: int
) -> dict[str, Any]:
    """What must not change between an interrupted run and its resumption (stored as ``RUN_CONFIG_FILE``)."""
    hp = asdict(config)
    hp.pop("keep_checkpoints")
    return {
        FINGERPRINT_KEY: fingerprint,
        "data_sha256": data_sha,
        "teacher_fingerprint": teacher.fingerprint if teacher else None,
        "teacher_adapter_fingerprint": teacher.adapter_fingerprint if teacher else None,
        "hyperparameters": hp,
        "base_model": base,
        "world_size": processes,  # the global batch, hence the data position of a checkpoint, depends on it
    }


def check_resume_identity(ckpt_root: Path, identity: dict[str, Any]) -> None:
    """Raise ValueError naming every setting in which ``identity`` differs from the interrupted run's."""
    stored_path = ckpt_root / RUN_CONFIG_FILE
    if not stored_path.is_file():
        return
    stored = json.loads(stored_path.read_text())
    keys = (FINGERPRINT_KEY, "data_sha256", "teacher_fingerprint", "teacher_adapter_fingerprint")
    diffs = [k for k in keys if stored.get(k) != identity[k]]
    if stored.get("world_size", 1) != identity["world_size"]:  # runs from before it was recorded had one process
        diffs.append("number of processes (world_size)")
    defaults = asdict(QLoRAConfig())  # a setting added since the run was stored had its default then
    diffs += [
        f"hyperparameters.{k}"
        for k in identity["hyperparameters"]
        if stored.get("hyperparameters", {}).get(k, defaults[k]) != identity["hyperparameters"][k]
    ]
    if diffs:
        raise ValueError(
            f"cannot resume: the interrupted run in {str(ckpt_root)!r} used a different {', '.join(diffs)}; "
            "resume with the same settings, or pass overwrite=True to start over"
        )


def staging_dir(output: Path) -> Path:
    """A fresh temporary directory inside ``output`` for the result, which ``publish`` then moves in."""
    output.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".adapter-", dir=output))


def publish(staging: Path, output: Path) -> None:
    """Move the result from ``staging`` into ``output`` file by file (each an atomic rename), then remove ``staging``.

    transformers' pickled ``training_args.bin`` stays behind: the metadata records the settings as JSON, and a
    result holds safetensors and JSON only.
    """
    try:
        for item in staging.iterdir():
            if item.name != TRAINER_ARGS_FILE:
                os.replace(item, output / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")

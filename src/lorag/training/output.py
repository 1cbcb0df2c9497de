"""The output directory's rules: what counts as a finished run, refusing to overwrite, and atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lorag.llm.adapters.format import CONFIG_FILE, METADATA_FILE, SAFETENSORS_FILE

LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
RUN_CONFIG_FILE = "lorag_run.json"
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


def save_atomically(model: Any, tokenizer: Any, output: Path, base_reference: str) -> None:
    """Write the result into a temp dir beside the output, then move the files in, so no half result is seen.

    A peft model saves its adapter (recording ``base_reference`` as its base); a plain model (``method="full"``)
    saves all its weights and the tokenizer, so the directory is a model lorag can load as a base or a teacher.
    Both as safetensors only.
    """
    output.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=output))
    try:
        peft_configs = getattr(model, "peft_config", None)
        if peft_configs:
            for cfg in peft_configs.values():
                cfg.base_model_name_or_path = base_reference
        model.save_pretrained(str(tmp), safe_serialization=True)
        if not peft_configs:
            tokenizer.save_pretrained(str(tmp))
        for item in tmp.iterdir():
            os.replace(item, output / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)

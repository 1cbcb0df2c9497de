"""Writing an export all at once: into a temporary path beside the output, renamed into place only when complete.

A failed or interrupted export therefore leaves no file behind, and an existing output is replaced only with
``overwrite`` and only by a finished one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorag.export.lora_adapter import AdapterExportError


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, for the CLI to report: the output path and the facts a server's command line needs."""

    output: Path
    format: str
    facts: dict[str, Any] = field(default_factory=dict)


def check_output(output: Path, *, overwrite: bool, directory: bool) -> None:
    """Refuse an existing output without ``overwrite``, or one of the other kind (file vs folder), before any work."""
    what = "folder" if directory else "file"
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise AdapterExportError(f"{output}: already exists; pass --overwrite to replace it, or choose another")
        if output.is_dir() != directory:
            raise AdapterExportError(f"{output}: exists and is not a {what}; this format writes a {what}")
    if not output.parent.is_dir():
        raise AdapterExportError(f"{output.parent}: no such folder; create it or choose another --output")


@contextmanager
def atomic_output(output: Path, *, overwrite: bool, directory: bool) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; on success it replaces ``output``, on any error it is removed."""
    check_output(output, overwrite=overwrite, directory=directory)
    prefix = f".{output.name}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=output.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=output.parent)
        os.close(handle)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o755 if directory else 0o644)  # mkstemp/mkdtemp make them private
        if directory and output.exists():
            aside = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=output.parent))
            os.replace(output, aside / output.name)
            os.replace(tmp, output)
            shutil.rmtree(aside)
        else:
            os.replace(tmp, output)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

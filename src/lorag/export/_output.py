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

from lorag.atomic import atomic_path
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
    """Yield a temporary path beside ``output``; on success it replaces ``output``, on any error it is removed.

    A file is ``lorag.atomic.atomic_path``'s job; a folder is swapped here, the old one moved aside first (a folder
    cannot be renamed over one that holds files).
    """
    check_output(output, overwrite=overwrite, directory=directory)
    if not directory:
        with atomic_path(output) as tmp:
            yield tmp
        return
    prefix = f".{output.name}."
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=output.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if output.exists():
            aside = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=output.parent))
            os.replace(output, aside / output.name)
            os.replace(tmp, output)
            shutil.rmtree(aside)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

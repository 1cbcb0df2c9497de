"""What every command that reads a documents folder shares (``index``, ``ask``, ``eval-rag``): where its index
lives, the embedder runtime, opening and syncing the index, and the folder's flags."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lorag.cli import usage_error
from lorag.rag.loaders import DEFAULT_MAX_FILE_MB

if TYPE_CHECKING:
    from lorag.rag.index import SyncReport


class IndexBackend(str, Enum):
    """Embedder runtimes for ``lorag index`` / ``ask`` (``openvino`` needs a calibration sample: Python API)."""

    torch = "torch"
    onnx = "onnx"
    onnx_fp32 = "onnx-fp32"


BACKEND_HELP = "Embedder runtime: torch, onnx (int8, about 2x faster indexing) or onnx-fp32; ask with the index's."


def default_index_dir(docs: Path) -> Path:
    """``.lorag/<folder>-<hash>`` in the working directory: one index per documents folder."""
    resolved = docs.expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return Path(".lorag") / f"{resolved.name or 'docs'}-{digest}"


def open_index(  # type: ignore[no-untyped-def]
    docs: Path | None,
    index_dir: Path | None,
    embedder: str,
    backend: IndexBackend,
    quiet: bool = False,
    *,
    follow_links: bool = False,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    exclude: Sequence[str] | None = None,
):
    """Open (and with ``docs``, sync) the index as ``lorag index`` does; a bad folder or index exits 2.

    ``quiet`` (``--json``): no report line and no progress bars on stderr. ``exclude``: as ``DocumentIndex.sync``
    takes it (``None``, no ``--exclude``: the patterns kept with the index).
    """
    if docs is None and index_dir is None:
        raise usage_error("give --docs DIR (and optionally --index-dir), or --index-dir of an existing index")
    if docs is not None and not docs.expanduser().is_dir():  # told before the embedder loads (seconds)
        raise usage_error(f"document folder {str(docs)!r} does not exist or is not a directory")
    from lorag.rag.index import DocumentIndex

    target = index_dir or default_index_dir(docs)  # type: ignore[arg-type]
    try:
        index = DocumentIndex(
            target,
            embedder=embedder,
            backend=backend.value,  # type: ignore[arg-type]
            show_progress=not quiet,
        )
        if docs is not None:
            # Another process syncing this folder (a second `ask`): wait for it, then start from what it saved.
            report = index.sync(docs, follow_links=follow_links, max_file_mb=max_file_mb, exclude=exclude, wait=None)
            if not quiet:  # skipped files were already logged by the loader
                typer.echo(sync_line(target, report, len(index)), err=True)
        elif len(index) == 0:
            raise usage_error(f"no index at {target}: run `lorag index --docs DIR --index-dir {target}` first")
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise usage_error(str(err)) from err
    return index


def sync_line(target: Path, report: SyncReport, chunks: int) -> str:
    """The line ``lorag index`` (and ``ask`` / ``eval-rag`` with ``--docs``) prints after a sync."""
    n = len(report.excluded)
    excluded = f", {n} {'path' if n == 1 else 'paths'} excluded" if n else ""
    if report.exclude_kept:  # say why files stay out that this command's flags did not name
        flags = " ".join(f"--exclude {shlex.quote(p)}" for p in report.exclude)
        excluded = f"{excluded or ', no path excluded'} by {flags} (kept with the index; --exclude '' clears it)"
    return (
        f"index {target}: {len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged files{excluded}; {report.chunks_embedded} chunks embedded, "
        f"{chunks} in the index"
    )


# Options of every command that reads --docs (``index``, ``ask``, ``eval-rag``).
FOLLOW_LINKS_OPTION = typer.Option(
    False, "--follow-links", help="Also read symlinks in --docs that point outside it (skipped and reported otherwise)."
)
EXCLUDE_OPTION = typer.Option(
    None,
    "--exclude",
    metavar="PATTERN",
    help="Leave out paths of --docs matching this gitignore pattern (repeatable): release-notes.md, reference/, "
    "/CHANGELOG.md. Indexed files it matches are dropped from the index. The patterns are kept with the index and "
    "apply to later syncs that give none; --exclude '' clears them.",
)
MAX_FILE_MB_OPTION = typer.Option(
    DEFAULT_MAX_FILE_MB, "--max-file-mb", min=0.001, help="Skip (and report) files larger than this many megabytes."
)

"""``lorag index``: build or update the index of a folder, one writer at a time."""

from __future__ import annotations

from pathlib import Path

import typer

from lorag.cli import app, usage_error
from lorag.cli.documents import (
    BACKEND_HELP,
    EXCLUDE_OPTION,
    FOLLOW_LINKS_OPTION,
    MAX_FILE_MB_OPTION,
    IndexBackend,
    default_index_dir,
    sync_line,
)


@app.command("index")
def index_command(
    docs: Path = typer.Option(..., "--docs", help="Folder of .md, .txt and .pdf files."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where the index lives (default .lorag/...)."),
    embedder: str = typer.Option("minilm", "--embedder", help="Embedding model reference."),
    backend: IndexBackend = typer.Option(IndexBackend.torch, "--backend", help=BACKEND_HELP),
    follow_links: bool = FOLLOW_LINKS_OPTION,
    max_file_mb: float = MAX_FILE_MB_OPTION,
    exclude: list[str] | None = EXCLUDE_OPTION,
    wait: float = typer.Option(
        0.0, "--wait", min=0.0, help="Seconds to wait while another process writes this index (default: fail at once)."
    ),
    ray: bool = typer.Option(
        False, "--ray", help='Chunk and embed on a local Ray runtime (pip install "lorag[ray]"); same index.'
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", metavar="ADDRESS", help="A Ray cluster to chunk and embed on (host:port, ray://...)."
    ),
    ray_workers: int | None = typer.Option(None, "--ray-workers", min=1, help="Ray workers (default: every CPU)."),
) -> None:
    """Build or update the hybrid index of a folder; unchanged files are not re-embedded."""
    from contextlib import nullcontext

    from lorag.locking import DirectoryBusyError, exclusive
    from lorag.rag.index import DocumentIndex
    from lorag.rag.ray_sync import RayExecutor, RayUnreachableError

    if not docs.expanduser().is_dir():  # told before the embedder loads (8 s)
        raise usage_error(f"document folder {str(docs)!r} does not exist or is not a directory")
    target = index_dir or default_index_dir(docs)
    executor = RayExecutor(ray_address, workers=ray_workers) if ray or ray_address else None
    try:
        # Ray is reached first (a cluster that does not answer leaves the index untouched), then the index is locked
        # before the embedder loads, so a second writer is told at once rather than after the model loads.
        with executor or nullcontext(), exclusive(target, wait=wait):
            index = DocumentIndex(target, embedder=embedder, backend=backend.value)  # type: ignore[arg-type]
            report = index.sync(
                docs, follow_links=follow_links, max_file_mb=max_file_mb, exclude=exclude, executor=executor or "local"
            )
    except DirectoryBusyError as err:
        raise usage_error(f"{err}, or pass --wait SECONDS") from err
    except (FileNotFoundError, NotADirectoryError, ValueError, ImportError, RayUnreachableError) as err:
        raise usage_error(str(err)) from err
    typer.echo(sync_line(target, report, len(index)), err=True)

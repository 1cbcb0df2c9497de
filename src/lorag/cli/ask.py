"""``lorag index`` and ``lorag ask``: a folder of documents in, cited answers out, offline."""

from __future__ import annotations

import hashlib
import json
import sys
from enum import Enum
from pathlib import Path

import typer

from lorag.cli import app

DEFAULT_MODEL = "smollm2-135m-instruct"


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


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _open_index(  # type: ignore[no-untyped-def]
    docs: Path | None, index_dir: Path | None, embedder: str, backend: IndexBackend, quiet: bool = False
):
    from lorag.rag.index import DocumentIndex

    if docs is None and index_dir is None:
        raise _fail("give --docs DIR (and optionally --index-dir), or --index-dir of an existing index")
    target = index_dir or default_index_dir(docs)  # type: ignore[arg-type]
    try:
        index = DocumentIndex(target, embedder=embedder, backend=backend.value)  # type: ignore[arg-type]
        if docs is not None:
            report = index.sync(docs)
            if not quiet:  # skipped files were already logged by the loader
                typer.echo(
                    f"index {target}: {len(report.added)} added, {len(report.changed)} changed, "
                    f"{len(report.removed)} removed, {len(report.unchanged)} unchanged files; "
                    f"{report.chunks_embedded} chunks embedded, {len(index)} in the index",
                    err=True,
                )
        elif len(index) == 0:
            raise _fail(f"no index at {target}: run `lorag index --docs DIR --index-dir {target}` first")
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise _fail(str(err)) from err
    return index


@app.command("index")
def index_command(
    docs: Path = typer.Option(..., "--docs", help="Folder of .md, .txt and .pdf files."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where the index lives (default .lorag/...)."),
    embedder: str = typer.Option("minilm", "--embedder", help="Embedding model reference."),
    backend: IndexBackend = typer.Option(IndexBackend.torch, "--backend", help=BACKEND_HELP),
) -> None:
    """Build or update the hybrid index of a folder; unchanged files are not re-embedded."""
    _open_index(docs, index_dir, embedder, backend)


@app.command("ask")
def ask_command(
    question: str = typer.Argument(..., help="The question to answer from the documents."),
    docs: Path | None = typer.Option(None, "--docs", help="Folder of .md, .txt and .pdf files (indexed first)."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where the index lives (default .lorag/...)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Chat model reference."),
    quantization: str = typer.Option("nf4", "--quantization", help="nf4, fp4, int8 or none."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter directory to answer with."),
    embedder: str = typer.Option("minilm", "--embedder", help="Embedding model reference."),
    backend: IndexBackend = typer.Option(IndexBackend.torch, "--backend", help=BACKEND_HELP),
    k: int = typer.Option(3, "--k", min=1, help="Passages retrieved."),
    max_tokens: int = typer.Option(160, "--max-tokens", min=1, help="Longest answer, in tokens."),
    min_relevance: float = typer.Option(
        0.3, "--min-relevance", help="Say the documents lack the answer when no passage is this similar."
    ),
    stream: bool = typer.Option(False, "--stream", help="Print the answer as it is generated."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with answer and sources."),
) -> None:
    """Answer a question from your documents and cite the passages used."""
    if not question.strip():
        raise _fail("the question is empty: ask something about your documents")
    if stream and as_json:
        raise _fail("--stream and --json exclude each other")
    from lorag.llm import LoragEngine
    from lorag.rag.pipeline import Answer, RagPipeline

    index = _open_index(docs, index_dir, embedder, backend, quiet=as_json)
    adapters = {}
    if adapter is not None:
        if not adapter.is_dir():
            raise _fail(f"adapter {str(adapter)!r} is not a directory")
        adapters[adapter.name] = str(adapter)
    try:
        engine = LoragEngine(model, quantization=quantization, adapters=adapters)  # type: ignore[arg-type]
    except (ValueError, LookupError, ImportError) as err:
        raise _fail(str(err)) from err
    pipeline = RagPipeline(index, engine, k=k, max_new_tokens=max_tokens, min_relevance=min_relevance)
    name = adapter.name if adapter is not None else None
    try:
        if stream:
            answer: Answer | None = None
            for piece in pipeline.stream(question, adapter=name):
                if isinstance(piece, Answer):
                    answer = piece
                else:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            typer.echo("")
            assert answer is not None
        else:
            answer = pipeline.ask(question, adapter=name)
    except ValueError as err:
        raise _fail(str(err)) from err
    finally:
        engine.close()
    if as_json:
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
        return
    if not stream:
        typer.echo(answer.answer)
    shown = answer.cited_sources()
    if shown:
        typer.echo("\nSources:")
        for s in shown:
            where = s.source + (f" > {s.section}" if s.section else "") + (f", page {s.page}" if s.page else "")
            typer.echo(f"[{s.number}] {where} (chars {s.start}-{s.end})")

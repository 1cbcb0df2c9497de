"""``lorag export-adapter``: a lorag / peft LoRA adapter as llama.cpp's LoRA GGUF or as vLLM's ``--lora-modules``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lorag.cli import app


class ExportFormat(str, Enum):
    gguf = "gguf"
    vllm = "vllm"


@app.command("export-adapter")
def export_adapter_command(
    adapter_dir: Annotated[
        Path, typer.Argument(metavar="ADAPTER_DIR", help="The adapter folder (adapter_config.json + safetensors).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The GGUF file (gguf) or the adapter folder (vllm) to write.")
    ],
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="gguf: llama-server --lora; vllm: vllm --lora-modules.")
    ] = ExportFormat.gguf,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="The base model: a GGUF file, a model folder or a lorag short name (smollm2-135m-instruct). "
            "Required for gguf; for vllm, checks every module and shape against it.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as one JSON object.")] = False,
) -> None:
    """Export a LoRA adapter for llama.cpp (GGUF) or vLLM; unsupported adapters are refused and nothing is written."""
    from lorag.export import AdapterExportError, to_gguf, to_vllm

    try:
        if export_format is ExportFormat.gguf:
            if base is None:
                raise AdapterExportError("--format gguf needs --base: the base model's GGUF file, folder or short name")
            result = to_gguf(adapter_dir, base, output, overwrite=overwrite)
        else:
            result = to_vllm(adapter_dir, output, base=base, overwrite=overwrite)
    except (AdapterExportError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    if as_json:
        typer.echo(json.dumps({"output": str(result.output), "format": result.format, **result.facts}, indent=2))
        return
    typer.echo(f"wrote {result.output} ({result.format})")
    for key, value in result.facts.items():
        typer.echo(f"  {key}: {value}")

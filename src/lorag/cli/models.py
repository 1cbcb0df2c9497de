"""``lorag models``: what each short name resolves to and whether it is ready."""

from __future__ import annotations

import json

import typer

from lorag.cli import app
from lorag.models import PACKAGED_MODELS, ModelNotAvailableError, model_status, resolve_model


@app.command("models")
def models_command(
    prepare: bool = typer.Option(False, "--prepare", help="Unpack or convert every installed model now."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """List the packaged short names, where they resolve, and whether they are installed and prepared."""
    if prepare:
        for status in model_status():
            if status.installed:
                try:
                    resolve_model(status.name)
                except ModelNotAvailableError as err:
                    typer.echo(f"error: {err}", err=True)
                    raise typer.Exit(1) from err
    rows = model_status()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    s.name: {
                        "kind": s.kind,
                        "installed": s.installed,
                        "prepared": s.prepared,
                        "location": str(s.location) if s.location else None,
                        "install": s.install_command,
                    }
                    for s in rows
                },
                indent=2,
            )
        )
        return
    width = max(len(n) for n in PACKAGED_MODELS)
    typer.echo(f"{'name':<{width}}  {'kind':<20}  {'state':<32}  location")
    for s in rows:
        if not s.installed:
            state, where = "not installed", s.install_command
        else:
            state = "installed, ready" if s.prepared else "installed, prepared on first use"
            where = str(s.location)
        typer.echo(f"{s.name:<{width}}  {s.kind:<20}  {state:<32}  {where}")

"""The ``lorag`` command line. Each subcommand lives in its own module and registers itself on ``app``."""

from __future__ import annotations

import logging
import os

import typer

app = typer.Typer(
    name="lorag",
    help="Hybrid retrieval, chunking, LoRA adapters and distilled embedders, offline on your machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what lorag does (INFO level)."),
) -> None:
    """Hybrid retrieval, chunking, LoRA adapters and distilled embedders, offline on your machine."""
    logging.getLogger("lorag").setLevel(logging.INFO if verbose else logging.WARNING)


# Importing a command module registers its commands on ``app``.
from lorag.cli import ask as _ask  # noqa: E402,F401
from lorag.cli import eval as _eval  # noqa: E402,F401
from lorag.cli import eval_rag as _eval_rag  # noqa: E402,F401
from lorag.cli import index as _index  # noqa: E402,F401  (after ask: its index command replaces ask's)
from lorag.cli import models as _models  # noqa: E402,F401
from lorag.cli import train_adapter as _train_adapter  # noqa: E402,F401


def main() -> None:
    """Entry point of the ``lorag`` script."""
    # OpenMP threads that spin while they wait starve each other on a busy machine: on 2 shared cores an unquantized
    # model decoded under 1 token/s with 2 threads, and one of its linear layers took 15.6 ms spinning vs 0.19 ms
    # waiting passively. Set before torch is imported (the CLI imports it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    app()


from lorag.cli import distill as _distill  # noqa: E402,F401

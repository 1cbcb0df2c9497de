"""The ``lorag`` command line. Each subcommand lives in its own module and registers itself on ``app``.

A command's module is imported only when that command runs (``distill``'s imports torch: 2 s), so ``lorag --help``
and a mistyped argument answer at once; ``COMMANDS`` keeps each one's module and one-line help for the listing.
Unless ``-v``, third-party warnings, log lines and progress bars that tell the user nothing are kept out of the
output; errors always show.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

#: ``name -> (module, one-line help)``; the help is the first line of the command's docstring (a test checks).
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("lorag.cli.ask", "Answer a question from your documents and cite the passages used."),
    "distill": (
        "lorag.cli.distill",
        "Distil TEACHER into a smaller student: L = a*CE + (1-a)*KL(T) + b*MSE, trained on unlabeled texts.",
    ),
    "eval": (
        "lorag.cli.eval",
        "Evaluate a retriever on a BEIR dataset, queries one at a time (latency includes query embedding).",
    ),
    "eval-rag": (
        "lorag.cli.eval_rag",
        "Score answers to a questions file: exact match, F1, citations, abstention, latency and tokens/s.",
    ),
    "export-adapter": (
        "lorag.cli.export_adapter",
        "Export a LoRA adapter for llama.cpp (GGUF) or vLLM; unsupported adapters are refused and nothing is written.",
    ),
    "index": (
        "lorag.cli.index",
        "Build or update the hybrid index of a folder; unchanged files are not re-embedded.",
    ),
    "models": (
        "lorag.cli.models",
        "List the packaged short names, where they resolve, and whether they are installed and prepared.",
    ),
    "train-adapter": (
        "lorag.cli.train_adapter",
        "Train an adapter (4-bit QLoRA by default) and save it as a peft adapter with metadata and a loss curve.",
    ),
}


class _LazyCommands(TyperGroup):
    """Lists every command from ``COMMANDS``; imports a command's module only when that command is resolved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (module, short_help) in COMMANDS.items():
            built = self.commands.get(name)
            if built is not None and getattr(built.callback, "__module__", None) == module:
                built._lorag_module = module  # type: ignore[attr-defined]  # already imported: the real one
            else:
                self.commands[name] = TyperCommand(name, short_help=short_help, help=short_help)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS:
            self._load(args[0])
        return super().resolve_command(ctx, args)

    def _load(self, name: str) -> None:
        module = COMMANDS[name][0]
        if getattr(self.commands.get(name), "_lorag_module", None) == module:
            return
        importlib.import_module(module)
        # The command this module registered under that name (matched by module, so no other module's wins).
        info = next(
            c
            for c in reversed(app.registered_commands)
            if c.name == name and getattr(c.callback, "__module__", None) == module
        )
        command = typer.main.get_command_from_info(
            info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
        )
        command._lorag_module = module  # type: ignore[attr-defined]
        self.commands[name] = command


app = typer.Typer(
    name="lorag",
    help="Hybrid retrieval, chunking, LoRA adapters and distilled embedders, offline on your machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_LazyCommands,
)


def usage_error(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit (status 2) to raise: bad input, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what lorag does (INFO level), with third-party warnings."
    ),
) -> None:
    """Hybrid retrieval, chunking, LoRA adapters and distilled embedders, offline on your machine."""
    logging.getLogger("lorag").setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        quiet_third_parties()


def quiet_third_parties() -> None:
    """Keep third-party Python warnings, log lines under ERROR and download/loading bars out of the output.

    They name internals (deprecated torch APIs, "Loading weights 103/103") that a user of lorag can do nothing
    about; ``-v`` shows them. Environment variables the user set win.
    """
    warnings.filterwarnings("ignore", module=r"(?!lorag\b|langchain_lorag\b|llama_index\.\w+\.lorag\b)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "huggingface_hub"):  # already imported: their settings were read at import
        if name in sys.modules:
            importlib.import_module(f"{name}.utils.logging").set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        importlib.import_module("huggingface_hub.utils").disable_progress_bars()


class _OnlyLoragBelowError(logging.Filter):
    """On the CLI's handler: a third-party record shows from ERROR up, lorag's from the level its logger allows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name == "lorag" or record.name.startswith("lorag.")


def main() -> None:
    """Entry point of the ``lorag`` script."""
    # OpenMP threads that spin while they wait starve each other on a busy machine: on 2 shared cores an unquantized
    # model decoded under 1 token/s with 2 threads, and one of its linear layers took 15.6 ms spinning vs 0.19 ms
    # waiting passively. Set before torch is imported (the CLI imports it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    root_options = sys.argv[1 : 1 + _first_command_index(sys.argv[1:])]
    verbose = "-v" in root_options or "--verbose" in root_options
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_OnlyLoragBelowError())
    app()


def _first_command_index(args: list[str]) -> int:
    """How many leading arguments are the root's own options (before the command name)."""
    return next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))

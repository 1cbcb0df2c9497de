"""The README runs as written: its Python snippets (each in a fresh interpreter) and the options of its CLI lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A snippet is a ```python block right after an HTML comment `<!-- snippet: NAME -->`.
SNIPPET = re.compile(r"<!-- snippet: ([\w-]+) -->\s*```python\n(.*?)```", re.S)


def snippets() -> dict[str, str]:
    return dict(SNIPPET.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def test_readme_has_the_framework_snippets() -> None:
    assert {"langchain-rag", "llamaindex-rag"} <= set(snippets())


@pytest.mark.real_model
@pytest.mark.parametrize("name", sorted(snippets()))
def test_snippet_runs(name: str) -> None:
    code = snippets()[name]
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"README snippet {name!r} failed:\n{out.stderr[-3000:]}"


def readme_cli_calls() -> list[tuple[str, list[str]]]:
    """(command, options) of every ``lorag COMMAND ...`` line in the README's bash blocks, continuations joined."""
    calls = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("lorag "):
                command = line.split("#")[0].split()
                calls.append((command[1], [w.split("=")[0] for w in command[2:] if w.startswith("--")]))
    return calls


def test_readme_cli_lines_use_options_that_exist() -> None:
    import typer

    from lorag.cli import app

    group = typer.main.get_command(app)
    calls = readme_cli_calls()
    assert {"ask", "index", "train-adapter", "distill"} <= {command for command, _ in calls}
    for command, options in calls:
        # Resolved as the CLI does: the group imports a command's module only then.
        _, resolved, _ = group.resolve_command(typer.Context(group), [command])  # type: ignore[attr-defined]
        known = {opt for param in resolved.params for opt in [*param.opts, *param.secondary_opts]}
        unknown = [o for o in options if o not in known]
        assert not unknown, f"README: lorag {command} has no option {', '.join(unknown)}"

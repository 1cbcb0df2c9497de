"""The README's Python snippets run as written (each in a fresh interpreter, from the repository root)."""

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

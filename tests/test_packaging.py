"""A built wheel, installed with all extras into a fresh venv, exposes every import root beside llama_index.core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = [
    "lorag",
    "langchain_lorag",
    "llama_index.core",
    "llama_index.llms.lorag",
    "llama_index.retrievers.lorag",
    "llama_index.query_engine.lorag",
    "llama_index.embeddings.lorag",
    "llama_index.node_parser.lorag",
]


def test_source_tree_imports_coexist_with_llama_index_core() -> None:
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in IMPORTS)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, lorag, lorag.models, lorag.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('langchain', 'llama_index'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_wheel_in_fresh_venv_with_all_extras(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], check=True)
    wheel = next(dist.glob("lorag-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    import torch

    # The same torch as this environment first, so the extras' torch range is already met (no CUDA download).
    torch_spec = f"torch=={torch.__version__.split('+')[0]}"
    subprocess.run([py, "-m", "pip", "install", "--quiet", torch_spec], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", f"{wheel}[all]"], check=True)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in IMPORTS)
    code += "import lorag; assert 'site-packages' in lorag.__file__, lorag.__file__\n"
    subprocess.run([py, "-c", code], check=True, cwd=tmp_path, timeout=300)

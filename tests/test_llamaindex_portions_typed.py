"""Every LlamaIndex namespace portion lorag ships is marked typed (PEP 561), as ``lorag`` and ``langchain_lorag``
are; the wheel takes each package directory whole, so the marker ships with it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("portion", ["llms", "embeddings", "retrievers", "node_parser"])
def test_portion_has_py_typed(portion: str) -> None:
    module = importlib.import_module(f"llama_index.{portion}.lorag")
    assert (Path(module.__file__).parent / "py.typed").is_file()

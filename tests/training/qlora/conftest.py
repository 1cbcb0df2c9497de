from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.qlora.helpers import echo_task, write_jsonl
from tiny_models import widen_tiny_llm


@pytest.fixture(scope="session")
def tiny_llm_nf4_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path) -> Path:
    """The tiny Llama's tokenizer with 64-wide layers: bitsandbytes' CPU 4-bit kernels need 64-element blocks."""
    return widen_tiny_llm(tiny_llm_dir, tmp_path_factory.mktemp("tiny-llm-64"))


@pytest.fixture
def echo_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "echo.jsonl", echo_task(48))

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.qlora.helpers import echo_task, write_jsonl
from tiny_models import widen_tiny_llm


@pytest.fixture(scope="session")
def tiny_llm_64_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path) -> Path:
    """The tiny Llama with 64-wide layers: bitsandbytes' CPU 4-bit kernels need 64-element blocks."""
    return widen_tiny_llm(tiny_llm_dir, tmp_path_factory.mktemp("tiny-llm-64-methods"))


@pytest.fixture
def echo_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "echo.jsonl", echo_task(48))


@pytest.fixture
def one_record_data(tmp_path: Path) -> Path:
    """One echo record 16 times: every batch is the same, so the logged loss has no sampling noise."""
    return write_jsonl(tmp_path / "one.jsonl", echo_task(1) * 16)

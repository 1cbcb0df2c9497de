from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.training.qlora.helpers import echo_task, write_jsonl
from tiny_models import widen_tiny_llm


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path) -> Path:
    """A wider random Llama with the student's tokenizer: a different model over the same vocabulary."""
    return widen_tiny_llm(tiny_llm_dir, tmp_path_factory.mktemp("teacher"), hidden=64, seed=7)


@pytest.fixture(scope="session")
def foreign_teacher_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path) -> Path:
    """The student's weights under a tokenizer with one token more: same sizes, another vocabulary."""
    out = tmp_path_factory.mktemp("foreign-teacher")
    shutil.copytree(tiny_llm_dir, out, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tokenizer.add_tokens(["<|tool_call|>"])
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def echo_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "echo.jsonl", echo_task(32))

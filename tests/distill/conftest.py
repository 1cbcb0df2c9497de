"""Tiny teachers and students for the distillation tests: several widths, depths and vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import CORPUS, build_tiny_sentence_transformer


@pytest.fixture(scope="session")
def distill_texts() -> list[str]:
    """40 distinct training texts (the tiny corpus's 10 sentences with variations)."""
    base = sorted(set(CORPUS))
    return [f"{t} {suffix}".strip() for suffix in ("", "again", "and more", "once more") for t in base]


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher: 2 layers, 32 wide."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("teacher"), hidden=32, layers=2)


@pytest.fixture(scope="session")
def narrow_student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model: 1 layer, 16 wide, the teacher's tokenizer."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("narrow"), hidden=16, layers=1, seed=1)


@pytest.fixture(scope="session")
def other_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with a different (smaller) vocabulary than the teacher's."""
    return build_tiny_sentence_transformer(
        tmp_path_factory.mktemp("other-tok"), hidden=32, layers=1, vocab_size=150, seed=2
    )

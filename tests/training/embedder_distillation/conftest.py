"""Tiny students for the embedder-distillation tests: several widths, depths and vocabularies (the teacher,
``teacher_dir``, and ``distill_texts`` are in tests/conftest.py: the embedding tests use them too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import build_tiny_sentence_transformer


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

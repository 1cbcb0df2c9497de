"""Bad input gets a clear error naming what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.chunking import TokenSplitter, make_splitter
from lorag.models import ModelNotAvailableError
from tests.chunking.fakes import fake_embed

METHODS = ["recursive", "sentence", "markdown", "token", "semantic"]


def _make(method: str, tiny_llm_dir: Path, **kwargs: object) -> object:
    extra: dict[str, object] = {"embedder": fake_embed} if method == "semantic" else {}
    return make_splitter(method, tokenizer=str(tiny_llm_dir), **{**extra, **kwargs})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(method: str, text: str, tiny_llm_dir: Path) -> None:
    with pytest.raises(ValueError, match="empty text"):
        _make(method, tiny_llm_dir).split(text)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", METHODS)
def test_chunk_size_zero_or_not_above_overlap(method: str, tiny_llm_dir: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size must be a positive integer number of tokens, got 0"):
        _make(method, tiny_llm_dir, chunk_size=0)
    if method != "semantic":
        with pytest.raises(ValueError, match=r"chunk_overlap \(50\) must be smaller than chunk_size \(20\)"):
            _make(method, tiny_llm_dir, chunk_size=20, chunk_overlap=50)


def test_unloadable_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="cannot load tokenizer"):
        make_splitter("recursive", 100, tokenizer=str(tmp_path))


def test_wrong_types_and_names() -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        make_splitter().split(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="choose one of"):
        make_splitter("recursive", preset="rust")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        TokenSplitter(100)
    with pytest.raises(ValueError, match="does not overlap"):
        make_splitter("semantic", 100, 10, embedder=fake_embed)
    with pytest.raises(TypeError, match="embedder must be"):
        make_splitter("semantic", 100, embedder=42)


def test_default_recipe() -> None:
    splitter = make_splitter()
    assert (splitter.method, splitter.chunk_size, splitter.chunk_overlap) == ("recursive", 1000, 125)
    semantic = make_splitter("semantic", 400, embedder=fake_embed)
    assert semantic.chunk_overlap == 0

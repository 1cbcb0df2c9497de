from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test module imports sentence-transformers or peft, which import bitsandbytes: imported first, lorag makes
# that import lazy and offline (lorag._bitsandbytes). Test modules list third-party imports first, so without this
# one bitsandbytes looked up a CPU kernel on the hub at collection ("Failed to load CPU gemm_4bit_forward").
import lorag  # noqa: F401
from tiny_models import CORPUS, build_tiny_causal_lm, build_tiny_sentence_transformer


@pytest.fixture(scope="session")
def llm_device() -> str:
    """Where the engine and adapter tests run the LLM: ``cpu``, or ``LORAG_TEST_DEVICE`` (``cuda``) on a GPU machine,
    so the same exactness and isolation checks cover bitsandbytes' CUDA kernels."""
    return os.environ.get("LORAG_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with a real BPE tokenizer and chat template."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT sentence-transformer with a WordPiece tokenizer."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def distill_texts() -> list[str]:
    """40 distinct training texts (the tiny corpus's 10 sentences with variations), for the embedding and the
    embedder-distillation tests."""
    base = sorted(set(CORPUS))
    return [f"{t} {suffix}".strip() for suffix in ("", "again", "and more", "once more") for t in base]


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher sentence-transformer of the embedding and embedder-distillation tests: 2 layers, 32 wide
    (tests/training/llm_distillation overrides it with its LLM teacher)."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("teacher"), hidden=32, layers=2)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A documents folder for the RAG and evaluation tests: three indexable files (one in a subfolder) and one file
    lorag does not index."""
    folder = tmp_path / "docs"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "cors.md").write_text(
        "# CORS\n\nCross-origin requests are allowed with the CORS middleware.\n\n"
        "## Origins\n\nList the allowed origins, for example https://example.org.\n"
    )
    (folder / "tasks.md").write_text("# Background tasks\n\nBackground tasks run after the response is sent.\n")
    (folder / "notes.txt").write_text("Plain notes: the server listens on port 8000 by default.\n")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return folder

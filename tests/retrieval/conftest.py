from __future__ import annotations

from pathlib import Path

import pytest

from lorag.embedding import Embedder


@pytest.fixture(scope="session")
def tiny_embedder(tiny_st_dir: Path) -> Embedder:
    return Embedder(str(tiny_st_dir), device="cpu")

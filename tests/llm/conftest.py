"""Fixtures for the LLM tests: tiny bases (hidden 32, and hidden 64 for bitsandbytes' 64-value 4-bit blocks) and
random adapters saved with peft (LoRA with ``init_lora_weights=False``, the other kinds drawn away from their neutral
start, so they really change the outputs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.llm.lora_helpers import OTHER_KINDS, make_adapter, make_kind_adapter
from tiny_models import widen_tiny_llm


@pytest.fixture(scope="session")
def adapter_dirs(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four random adapters for the tiny base: ``a0``..``a3`` (a3 of rank 8 on attention only)."""
    root = tmp_path_factory.mktemp("adapters")
    dirs = {f"a{i}": make_adapter(tiny_llm_dir, root / f"a{i}", seed=100 + i) for i in range(3)}
    dirs["a3"] = make_adapter(tiny_llm_dir, root / "a3", seed=103, r=8, targets=["q_proj", "v_proj"])
    return dirs


@pytest.fixture(scope="session")
def kind_dirs(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random adapter of each non-LoRA kind for the tiny base, registered under its kind's name."""
    root = tmp_path_factory.mktemp("kinds")
    return {
        kind: make_kind_adapter(tiny_llm_dir, root / kind, kind, seed=300 + i) for i, kind in enumerate(OTHER_KINDS)
    }


@pytest.fixture(scope="session")
def tiny_llm64_dir(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return widen_tiny_llm(tiny_llm_dir, tmp_path_factory.mktemp("tiny-llm-64"))


@pytest.fixture(scope="session")
def long_llm_dir(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a 2048-token context (RoPE: only the config changes), room for tools and a history."""
    out = tmp_path_factory.mktemp("tiny-llm-long")
    for item in tiny_llm_dir.iterdir():
        shutil.copy(item, out / item.name)
    config = json.loads((out / "config.json").read_text())
    config["max_position_embeddings"] = 2048
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def long_engine(long_llm_dir: Path, llm_device: str):
    """A fresh engine (fp32) per test module over the 2048-token tiny model."""
    from lorag.llm import LoragEngine

    eng = LoragEngine(long_llm_dir, quantization="none", device=llm_device)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def adapter64_dirs(tiny_llm64_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters64")
    return {f"b{i}": make_adapter(tiny_llm64_dir, root / f"b{i}", seed=200 + i) for i in range(2)}


@pytest.fixture()
def engine(tiny_llm_dir: Path, adapter_dirs: dict[str, Path], llm_device: str):
    """A fresh engine (fp32 on CPU, exact batching) over the tiny base with a0..a3 registered (not yet loaded)."""
    from lorag.llm import LoragEngine

    eng = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=adapter_dirs, exact_batching=True)
    yield eng
    eng.close()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run faster on one intra-op thread, and much faster on a busy shared machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

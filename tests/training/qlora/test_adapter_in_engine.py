"""A trained adapter loads into the LLM wrapper's registry as it is, is checked against its base, and is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lorag.llm import AdapterError, LoragEngine
from lorag.training.qlora import QLoRAConfig, train_adapter


@pytest.fixture(scope="module")
def trained(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.training.qlora.helpers import echo_task, write_jsonl

    folder = tmp_path_factory.mktemp("trained")
    data = write_jsonl(folder / "echo.jsonl", echo_task(48))
    config = QLoRAConfig(quantization="none", max_steps=8, learning_rate=1e-2, batch_size=8, eval_fraction=0.0)
    train_adapter(tiny_llm_dir, data, folder / "adapter", config, show_progress=False)
    return folder / "adapter"


def test_engine_serves_the_trained_adapter(tiny_llm_dir: Path, trained: Path, llm_device: str) -> None:
    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device=llm_device, on_base_mismatch="error")
    try:
        engine.register_adapter("echo", trained)
        messages = [{"role": "user", "content": "word fox"}]
        base = engine.generate(messages=messages, max_tokens=6)
        tuned = engine.generate(messages=messages, adapter="echo", max_tokens=6)
        again = engine.generate(messages=messages, max_tokens=6)
    finally:
        engine.close()
    assert tuned.token_ids != base.token_ids
    assert again.token_ids == base.token_ids  # the base is untouched by serving the adapter


def test_engine_refuses_an_adapter_recorded_for_another_base(tiny_llm_dir: Path, trained: Path, tmp_path: Path) -> None:
    moved = tmp_path / "adapter"
    shutil.copytree(trained, moved)
    meta_path = moved / "training_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["base_model_fingerprint"] = "0" * 16
    meta_path.write_text(json.dumps(meta))
    engine = LoragEngine(str(tiny_llm_dir), quantization="none", device="cpu", on_base_mismatch="error")
    try:
        with pytest.raises(AdapterError, match="fingerprint"):
            engine.register_adapter("echo", moved, load=True)
        assert engine.adapters.names() == []
    finally:
        engine.close()

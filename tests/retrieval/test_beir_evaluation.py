"""BEIR loader (jsonl or jsonl.gz, CRLF or LF qrels), pytrec_eval metrics and the ``lorag eval`` command."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.evaluation import evaluate_run, latency_percentiles, load_beir

CORPUS = {
    "d1": ("Foxes", "Red foxes hunt small rodents at night."),
    "d2": ("Paris", "Paris is the capital of France."),
    "d3": ("Python", "Python is a programming language."),
    "d4": ("Wolves", "Wolves live and hunt in packs."),
}
QUERIES = {"q1": "what do foxes hunt", "q2": "capital of France", "q3": "unjudged query"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "d9", 1)]


def make_beir(root: Path, *, gz: bool, crlf: bool, header: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) + "\n" for i, (t, x) in CORPUS.items()
    )
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        (root / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    (root / "qrels").mkdir(exist_ok=True)
    eol = "\r\n" if crlf else "\n"
    rows = (["query-id\tcorpus-id\tscore"] if header else []) + [f"{q}\t{d}\t{s}" for q, d, s in QRELS]
    (root / "qrels" / "test.tsv").write_bytes((eol.join(rows) + eol).encode())
    return root


@pytest.mark.parametrize(("gz", "crlf", "header"), [(True, True, True), (False, False, True), (False, True, False)])
def test_loader_reads_every_variant(tmp_path: Path, gz: bool, crlf: bool, header: bool) -> None:
    data = load_beir(make_beir(tmp_path / "beir", gz=gz, crlf=crlf, header=header))
    assert set(data.corpus) == set(CORPUS)
    assert data.queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}  # only judged queries
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1, "d9": 1}}  # no "\r" left in ids or scores
    assert data.document_text("d2") == "Paris Paris is the capital of France."


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(tmp_path / "missing")
    root = make_beir(tmp_path / "beir", gz=False, crlf=False)
    with pytest.raises(FileNotFoundError, match=r"split 'dev'.*splits there: \['test'\]"):
        load_beir(root, split="dev")
    (root / "qrels" / "test.tsv").write_text("q1\td1\n")
    with pytest.raises(ValueError, match="expected 'query-id"):
        load_beir(root)


def test_metrics_match_hand_computed_values() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d9": 1}}
    run = {"q1": {"d4": 2.0, "d1": 1.0}, "q2": {"d2": 3.0}}
    report = evaluate_run(qrels, run, [0.001, 0.003])
    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q2 = 1.0 / (1 + 1 / math.log2(3))
    assert report.ndcg_at_10 == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert report.recall_at_100 == pytest.approx((1 + 0.5) / 2)
    assert report.mrr_at_10 == pytest.approx((0.5 + 1) / 2)
    assert report.latency_ms_p50 == pytest.approx(2.0)
    assert set(report.to_json()) == {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p95"}


def test_mrr_is_cut_at_10() -> None:
    run = {"q1": {f"x{i}": 100.0 - i for i in range(10)} | {"d1": 1.0}}
    assert evaluate_run({"q1": {"d1": 1}}, run).mrr_at_10 == 0.0
    assert latency_percentiles([]) == (0.0, 0.0)


def test_eval_cli_json_is_one_object(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "beir", gz=True, crlf=True)
    result = CliRunner().invoke(app, ["eval", "--data", str(root), "--retriever", "bm25", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p95"}
    # q1 finds d1 first (fox + hunt); q2 finds d2 first, but its second relevant document d9 is not in the corpus.
    assert payload["ndcg@10"] == pytest.approx((1.0 + 1.0 / (1.0 + 1.0 / math.log2(3))) / 2)
    assert payload["recall@100"] == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.parametrize("retriever", ["bm25", "tfidf"])
def test_eval_cli_sparse_retrievers_rank_the_relevant_document_first(tmp_path: Path, retriever: str) -> None:
    root = make_beir(tmp_path / "beir", gz=False, crlf=False)
    result = CliRunner().invoke(app, ["eval", "--data", str(root), "--retriever", retriever, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # q1's only relevant document d1 and q2's d2 (of d2 and the absent d9) come first: MRR@10 is 1 for both.
    assert payload["mrr@10"] == pytest.approx(1.0)
    assert payload["recall@100"] == pytest.approx((1.0 + 0.5) / 2)


def test_eval_cli_rejects_unknown_retriever_and_missing_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "--retriever", "splade"])
    assert result.exit_code != 0 and "bm25" in result.output and "tfidf" in result.output
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "nope"), "--retriever", "bm25"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_eval_cli_onnx_fp32_backend_scores_like_torch(
    tmp_path: Path, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    root = make_beir(tmp_path / "beir", gz=False, crlf=False)
    payloads = {}
    for backend in ("torch", "onnx-fp32"):
        args = ["eval", "--data", str(root), "--retriever", "dense", "--embedder", str(tiny_st_dir)]
        result = CliRunner().invoke(app, [*args, "--backend", backend, "--json"])
        assert result.exit_code == 0, result.output
        payloads[backend] = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("ndcg@10", "recall@100", "mrr@10"):
        assert payloads["onnx-fp32"][key] == pytest.approx(payloads["torch"][key])
    assert list((tmp_path / "home" / "onnx").rglob("model.onnx"))


def test_eval_cli_openvino_backend_calibrates_on_the_corpus(
    tmp_path: Path, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    root = make_beir(tmp_path / "beir", gz=False, crlf=False)
    args = ["eval", "--data", str(root), "--retriever", "dense", "--embedder", str(tiny_st_dir), "--json"]
    result = CliRunner().invoke(app, [*args, "--backend", "openvino"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= payload["ndcg@10"] <= 1.0
    assert len(list((tmp_path / "home" / "openvino").rglob("model.xml"))) == 1


def test_eval_cli_hybrid_takes_tfidf_as_its_sparse_side(
    tmp_path: Path, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lorag.retrieval import hybrid

    built: list[str] = []
    make_sparse = hybrid.make_sparse
    monkeypatch.setattr(hybrid, "make_sparse", lambda name, **kw: built.append(name) or make_sparse(name, **kw))
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))
    root = make_beir(tmp_path / "beir", gz=False, crlf=False)
    args = ["eval", "--data", str(root), "--retriever", "hybrid", "--sparse", "tfidf", "--embedder", str(tiny_st_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert built == ["tfidf"] and "hybrid (tfidf, convex)" in result.output

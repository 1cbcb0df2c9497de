"""Distilled embedders on BEIR SciFact: teachers, layer-reduced and static students, int8 ONNX and OpenVINO.

One run, one table: nDCG@10 (dense retrieval, test split, pytrec_eval), retention vs each row's teacher, encode
throughput on one fixed sample of corpus texts (same texts for every model, measured back to back in this run) and
the speedup over the row's teacher (torch, float32): after one untimed pass per model, interleaved rounds, the
median over rounds of each round's ratio (paired, so a load swing between rounds does not decide it), and training
time. Students train only on corpus texts (a
random subset, ``--train-docs``), never on queries; the OpenVINO int8 model is calibrated on 128 corpus documents.

    python benchmarks/distill.py --data ../shared/data/scifact [--max-docs N] [--train-docs N] [--teachers minilm,mpnet]

``--max-docs`` evaluates on a sub-corpus (every document relevant to a test query plus random others) when the
full 5,183 documents would take too long to embed with every model; the teacher's corpus vectors come from the
shared embedding cache when present (``$LORAG_HOME/embeddings.sqlite``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from lorag._imports import is_available  # noqa: E402
from lorag.embedding import (  # noqa: E402
    Embedder,
    EmbeddingCache,
    add_to_faiss_index,
    build_faiss_index,
    calibration_sample,
    search_faiss_index,
)
from lorag.embedding.quantization import calibration_ranges, quantize  # noqa: E402
from lorag.models import ModelNotAvailableError, lorag_home, resolve_model  # noqa: E402
from lorag.training.distill import DistillConfig, distill  # noqa: E402
from lorag.training.distill_data import add_sentences  # noqa: E402


@dataclass
class Row:
    name: str
    ndcg: float
    throughput: float
    train_seconds: float | None = None  # optimisation steps
    total_seconds: float | None = None  # the whole distill run: teacher targets, student build, training
    speedup: float = 0.0
    reference: int = 0  # row of this model's teacher
    note: str = ""


def load_scifact(data: Path) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    ids, texts = [], []
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            ids.append(str(doc["_id"]))
            texts.append((doc.get("title", "") + " " + doc.get("text", "")).strip())
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with open(data / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    return ids, texts, queries, qrels


def ndcg_at_10(
    doc_vecs: np.ndarray,
    query_vecs: np.ndarray,
    precision: str,
    doc_ids: list[str],
    qids: list[str],
    qrels: dict[str, dict[str, int]],
) -> float:
    import pytrec_eval

    index = build_faiss_index(precision, doc_vecs.shape[1] * (8 if precision == "binary" else 1))
    add_to_faiss_index(index, doc_vecs, precision)
    scores, ids = search_faiss_index(index, query_vecs, 100, precision)
    run = {
        qid: {doc_ids[j]: float(s) for s, j in zip(scores[i], ids[i], strict=True) if j >= 0}
        for i, qid in enumerate(qids)
    }
    evaluator = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in qids}, {"ndcg_cut.10"})
    return float(np.mean([m["ndcg_cut_10"] for m in evaluator.evaluate(run).values()]))


def throughput(embedder: Embedder, texts: list[str]) -> float:
    """Texts per second embedding ``texts`` without the cache (one warm-up call first)."""
    cache, embedder.cache = embedder.cache, None
    try:
        embedder.embed_documents(texts[:1])
        started = time.perf_counter()
        embedder.embed_documents(texts)
        return len(texts) / (time.perf_counter() - started)
    finally:
        embedder.cache = cache


def trained_on(record: dict[str, Any], what: str = "") -> str:
    """The training-data column: how many texts (and of what), and the teacher backend when it was not torch."""
    backend = record["config"].get("teacher_backend", "torch")
    texts = f"{record['examples']} texts" + (f" ({what})" if what else "")
    return texts + ("" if backend == "torch" else f", teacher targets by {backend}")


def per_teacher(value: str, teachers: list[str], option: str) -> list[str]:
    """One comma-separated value for all teachers, or one per teacher."""
    values = [v.strip() for v in value.split(",")]
    if len(values) == 1:
        return values * len(teachers)
    if len(values) != len(teachers):
        raise SystemExit(f"{option}: give one value or one per teacher ({len(teachers)}), got {value!r}")
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "scifact")
    p.add_argument("--teachers", default="minilm,mpnet", help="comma-separated teachers, evaluated in this order")
    p.add_argument("--distill", default=None, help="comma-separated teachers to distill (default: the first)")
    p.add_argument("--max-docs", type=int, default=None, help="evaluate on a sub-corpus of this many documents")
    p.add_argument(
        "--train-docs", default="1500", help="corpus texts for the layer-reduced student (one, or one per teacher)"
    )
    p.add_argument("--throughput-texts", type=int, default=500, help="fixed sample for the throughput column")
    p.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds; the best is reported")
    p.add_argument("--layers", default="3", help="layers the layer-reduced student keeps (one, or one per teacher)")
    p.add_argument(
        "--train-sentences",
        default="0",
        help="sentences of each training document added as texts (lorag distill --sentences; one, or one per teacher)",
    )
    p.add_argument(
        "--whole-docs",
        default="all",
        help="of the training documents, how many train whole (all, or N: the rest give only their sentences; "
        "lorag distill --whole-texts; one, or one per teacher)",
    )
    p.add_argument("--layer-epochs", default="1", help="epochs of the layer-reduced student (one, or one per teacher)")
    p.add_argument(
        "--teacher-backend",
        default="torch",
        help="what computes the students' targets: torch or openvino (int8), one or one per teacher",
    )
    p.add_argument("--layer-max-steps", type=int, default=-1)
    p.add_argument("--layer-lr", default="2e-4", help="learning rate of the layer student (one, or one per teacher)")
    p.add_argument("--static-epochs", default="5", help="epochs of the static student (one, or one per teacher)")
    p.add_argument("--static-lr", type=float, default=5e-2)
    p.add_argument("--static-batch-size", type=int, default=128)
    p.add_argument("--static-dim", type=int, default=None, help="PCA dimensions of the static student")
    p.add_argument(
        "--static-train-docs",
        default="all",
        help="corpus texts for the static student: all, layer (the layer student's texts, whose targets are cached), "
        "or N of the layer student's documents (one, or per teacher)",
    )
    p.add_argument("--train-max-seq-length", type=int, default=128)
    p.add_argument("--students-dir", type=Path, default=lorag_home() / "bench" / "distill")
    p.add_argument("--no-cache", action="store_true", help="do not use the shared embedding cache")
    p.add_argument(
        "--reuse-students",
        action="store_true",
        help="use students already in --students-dir (training time from their lorag_distill.json)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started_all = time.perf_counter()

    ids, texts, queries, qrels = load_scifact(args.data)
    rng = random.Random(0)
    relevant = {d for rel in qrels.values() for d in rel}
    if args.max_docs is not None and args.max_docs < len(ids):
        keep = {i for i, d in enumerate(ids) if d in relevant}
        others = [i for i in range(len(ids)) if i not in keep]
        keep |= set(rng.sample(others, max(0, args.max_docs - len(keep))))
        eval_idx = sorted(keep)
    else:
        eval_idx = list(range(len(ids)))
    doc_ids = [ids[i] for i in eval_idx]
    corpus = [texts[i] for i in eval_idx]
    sample_idx = sorted(random.Random(2).sample(range(len(corpus)), min(args.throughput_texts, len(corpus))))
    qids = sorted(queries)
    query_texts = [queries[q] for q in qids]
    cache = None if args.no_cache else EmbeddingCache(lorag_home() / "embeddings.sqlite")
    teachers = [t.strip() for t in args.teachers.split(",") if t.strip()]
    distilled = set(args.distill.split(",")) if args.distill else set(teachers[:1])
    if distilled - set(teachers):
        raise SystemExit(f"--distill names teachers not in --teachers: {', '.join(sorted(distilled - set(teachers)))}")
    layers = [int(v) for v in per_teacher(args.layers, teachers, "--layers")]
    train_docs = [int(v) for v in per_teacher(args.train_docs, teachers, "--train-docs")]
    layer_epochs = [float(v) for v in per_teacher(args.layer_epochs, teachers, "--layer-epochs")]
    teacher_backends = per_teacher(args.teacher_backend, teachers, "--teacher-backend")
    static_epochs = [float(v) for v in per_teacher(args.static_epochs, teachers, "--static-epochs")]
    train_sentences = [int(v) for v in per_teacher(args.train_sentences, teachers, "--train-sentences")]
    layer_lrs = [float(v) for v in per_teacher(args.layer_lr, teachers, "--layer-lr")]
    whole_docs = per_teacher(args.whole_docs, teachers, "--whole-docs")
    if bad := [v for v in whole_docs if v != "all" and not v.isdigit()]:
        raise SystemExit(f"--whole-docs takes all or a number, not {', '.join(bad)}")
    static_docs = per_teacher(args.static_train_docs, teachers, "--static-train-docs")
    if bad := [v for v in static_docs if v not in ("all", "layer") and not v.isdigit()]:
        raise SystemExit(f"--static-train-docs takes all, layer or a number, not {', '.join(bad)}")
    print(
        f"# SciFact: {len(corpus)} of {len(ids)} docs, {len(qids)} test queries; students train on corpus texts only; "
        f"throughput on {len(sample_idx)} fixed corpus texts, {args.rounds} interleaved rounds",
        flush=True,
    )

    rows: list[Row] = []
    precision_rows: list[tuple[str, float, int]] = []
    embedders: list[Embedder] = []

    def evaluate(
        name: str, embedder: Embedder, reference: int, record: dict[str, Any] | None = None, note: str = ""
    ) -> np.ndarray:
        vecs = embedder.embed_documents(corpus)
        qvecs = embedder.embed_queries(query_texts)
        ndcg = ndcg_at_10(vecs, qvecs, "float32", doc_ids, qids, qrels)
        row = Row(name, ndcg, 0.0, reference=reference, note=note)
        if record is not None:
            row.train_seconds, row.total_seconds = record["train_seconds"], record.get("total_seconds")
        rows.append(row)
        embedders.append(embedder)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: nDCG@10 {ndcg:.4f}", flush=True)
        return vecs

    def trained(base: str, out: Path, spec: str, texts_: list[str], config: DistillConfig) -> dict[str, Any]:
        """Train (or with --reuse-students, reuse) a student; returns its record (``lorag_distill.json``)."""
        record = out / "lorag_distill.json"
        if not (args.reuse_students and record.is_file()):
            distill(base, spec, out, texts=texts_, cache=cache, overwrite=True, config=config)
        return dict(json.loads(record.read_text()))

    args.students_dir.mkdir(parents=True, exist_ok=True)
    for t, base in enumerate(teachers):
        try:
            resolve_model(base)
        except ModelNotAvailableError as err:
            print(f"  {base}: skipped ({err})", flush=True)
            continue
        ref = len(rows)
        teacher = Embedder(base, cache=cache, show_progress=True)
        teacher_vecs = evaluate(f"{base} (teacher, torch float32)", teacher, ref)
        if t == 0:
            # Embedding precision on the same vectors: int8 calibrated on the throughput sample, binary by sign.
            teacher_q = teacher.embed_queries(query_texts)
            ranges = calibration_ranges(teacher_vecs[sample_idx])
            for precision in ("float32", "int8", "binary"):
                d_vecs, q_vecs = quantize(teacher_vecs, precision, ranges), quantize(teacher_q, precision, ranges)  # type: ignore[arg-type]
                precision_rows.append(
                    (precision, ndcg_at_10(d_vecs, q_vecs, precision, doc_ids, qids, qrels), int(d_vecs.nbytes))
                )
        evaluate(f"{base} ONNX int8 (dynamic quantization)", Embedder(base, backend="onnx", cache=cache), ref)
        if is_available("openvino") and is_available("nncf"):
            calibration = calibration_sample(texts)  # corpus documents, never queries
            openvino = Embedder(base, backend="openvino", calibration=calibration, cache=cache)
            evaluate(f"{base} OpenVINO int8 (static, {len(calibration)} corpus texts)", openvino, ref)
        if base not in distilled:
            continue
        doc_sample = [texts[i] for i in random.Random(1).sample(range(len(texts)), min(train_docs[t], len(texts)))]
        layer_dir = args.students_dir / f"{base}-layers{layers[t]}"
        layer_config = DistillConfig(
            epochs=layer_epochs[t],
            max_steps=args.layer_max_steps,
            max_seq_length=args.train_max_seq_length,
            learning_rate=layer_lrs[t],
            teacher_backend=teacher_backends[t],  # type: ignore[arg-type]
        )
        whole = None if whole_docs[t] == "all" else int(whole_docs[t])
        layer_texts = add_sentences(doc_sample, train_sentences[t], whole_texts=whole)
        n_whole = len(doc_sample) if whole is None else min(whole, len(doc_sample))
        layer_what = f"{n_whole} docs + {len(layer_texts) - n_whole} sentences of {len(doc_sample)} docs"
        record = trained(base, layer_dir, f"layers:{layers[t]}", layer_texts, layer_config)
        student = Embedder(str(layer_dir), cache=cache)
        evaluate(f"{base} student layers:{layers[t]}", student, ref, record, trained_on(record, layer_what))

        static_dir = args.students_dir / f"{base}-static"
        # all documents, or the layer student's texts or documents (whose teacher vectors are cached)
        choice = static_docs[t]
        static_texts = texts if choice == "all" else layer_texts if choice == "layer" else doc_sample[: int(choice)]
        static_config = DistillConfig(
            epochs=static_epochs[t],
            learning_rate=args.static_lr,
            batch_size=args.static_batch_size,
            dimension=args.static_dim,
            teacher_backend=teacher_backends[t],  # type: ignore[arg-type]
        )
        record = trained(base, static_dir, "static", static_texts, static_config)
        student = Embedder(str(static_dir), cache=cache)
        static_what = "all docs" if choice == "all" else "the layer student's" if choice == "layer" else "docs"
        evaluate(f"{base} student static", student, ref, record, trained_on(record, static_what))

    sample = [corpus[i] for i in sample_idx]
    for embedder in embedders:  # a whole untimed pass: torch (oneDNN) builds kernels per new input shape
        throughput(embedder, sample)
    per_round: list[list[float]] = []
    for round_ in range(args.rounds):  # interleaved rounds: every model sees the same machine load
        per_round.append([throughput(embedder, sample) for embedder in embedders])
        for row, rate in zip(rows, per_round[-1], strict=True):
            row.throughput = max(row.throughput, rate)
            print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1}: {row.name} {rate:.1f} texts/s", flush=True)
    for i, row in enumerate(rows):  # paired: each round's rate over its teacher's rate in the same round
        row.speedup = statistics.median(rates[i] / rates[row.reference] for rates in per_round)

    print()
    print(
        f"Dense retrieval on BEIR SciFact test ({len(qids)} queries, {len(corpus)} docs), "
        f"{platform.machine()}, torch CPU. Speedup and retention relative to each row's teacher (torch float32)."
    )
    print()
    print(
        f"| model | nDCG@10 | retention | texts/s (best of {args.rounds}) | speedup (median per round) | training | "
        "whole distill run | trained on |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        train, total = (f"{s / 60:.1f} min" if s is not None else "-" for s in (r.train_seconds, r.total_seconds))
        retention = r.ndcg / rows[r.reference].ndcg
        print(
            f"| {r.name} | {r.ndcg:.4f} | {retention:.1%} | {r.throughput:.1f} | {r.speedup:.2f}x | {train} | "
            f"{total} | {r.note or '-'} |"
        )
    print()
    print(
        f"Embedding precision ({teachers[0]} vectors above; int8 calibrated on the {len(sample_idx)}-text sample; "
        "FAISS index from lorag.embedding.build_faiss_index):"
    )
    print()
    print("| precision | nDCG@10 | retention | corpus vectors |")
    print("| --- | ---: | ---: | ---: |")
    for precision, ndcg, nbytes in precision_rows:
        print(f"| {precision} | {ndcg:.4f} | {ndcg / precision_rows[0][1]:.1%} | {nbytes / 1024:.0f} KiB |")
    print()
    print(f"total wall time {(time.perf_counter() - started_all) / 60:.1f} min")


if __name__ == "__main__":
    main()

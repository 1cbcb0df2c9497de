"""``lorag eval``: nDCG@10, Recall@100, MRR@10 and per-query latency of a lorag retriever on a BEIR dataset."""

from __future__ import annotations

import json
import logging
import time
from enum import Enum
from typing import Annotated, Any

import typer

from lorag.cli import app

logger = logging.getLogger(__name__)

#: Documents retrieved per query (Recall@100 needs 100).
DEPTH = 100


class RetrieverKind(str, Enum):
    bm25 = "bm25"
    tfidf = "tfidf"
    dense = "dense"
    hybrid = "hybrid"


class SparseKind(str, Enum):
    bm25 = "bm25"
    tfidf = "tfidf"


class FusionKind(str, Enum):
    rrf = "rrf"
    convex = "convex"


class BackendKind(str, Enum):
    torch = "torch"
    onnx = "onnx"
    onnx_fp32 = "onnx-fp32"
    openvino = "openvino"


@app.command("eval")
def eval_command(
    data: Annotated[
        str, typer.Option("--data", help="BEIR dataset directory (corpus.jsonl[.gz], queries.jsonl, qrels/).")
    ],
    retriever: Annotated[RetrieverKind, typer.Option("--retriever", help="Which retriever to evaluate.")],
    fusion: Annotated[FusionKind, typer.Option("--fusion", help="Hybrid fusion.")] = FusionKind.convex,
    sparse_kind: Annotated[
        SparseKind, typer.Option("--sparse", help="The hybrid's lexical side: BM25 or TF-IDF.")
    ] = SparseKind.bm25,
    embedder_name: Annotated[
        str, typer.Option("--embedder", help="Embedding model reference (dense and hybrid).")
    ] = "minilm",
    backend: Annotated[
        BackendKind,
        typer.Option(
            "--backend",
            help="Embedder runtime: torch, onnx (int8 weights), onnx-fp32 or openvino (int8 calibrated on a corpus "
            "sample).",
        ),
    ] = BackendKind.torch,
    split: Annotated[str, typer.Option("--split", help="Qrels split: qrels/<split>.tsv.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with the metrics.")] = False,
) -> None:
    """Evaluate a retriever on a BEIR dataset, queries one at a time (latency includes query embedding)."""
    from lorag.evaluation import evaluate_retriever, load_beir
    from lorag.retrieval.hybrid import make_sparse

    try:
        dataset = load_beir(data, split=split)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    ids = list(dataset.corpus)
    texts = [dataset.document_text(i) for i in ids]
    start = time.perf_counter()
    sparse = None
    if retriever != RetrieverKind.dense:
        sparse = make_sparse(retriever.value if retriever != RetrieverKind.hybrid else sparse_kind.value)
        sparse.add(texts, ids=ids)
    dense = None
    if retriever in (RetrieverKind.dense, RetrieverKind.hybrid):
        from lorag.embedding import Embedder, EmbeddingCache, calibration_sample
        from lorag.models import lorag_home
        from lorag.retrieval import DenseIndex

        embedder = Embedder(
            embedder_name,
            cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"),
            show_progress=True,
            backend=backend.value,  # type: ignore[arg-type]  # the enum's values are the Backend literals
            calibration=calibration_sample(texts) if backend == BackendKind.openvino else None,
        )
        vectors = embedder.embed_documents(texts)  # cached: an unchanged corpus is embedded once
        embedder.cache = None  # queries are embedded fresh, so the latency includes embedding them
        dense = DenseIndex.from_texts(texts, embedder, ids=ids, embeddings=vectors)
    build_s = time.perf_counter() - start

    searcher: Any
    if retriever == RetrieverKind.hybrid:
        from lorag.retrieval import HybridRetriever

        searcher = HybridRetriever(sparse, dense, fusion=fusion.value)  # type: ignore[arg-type]  # both built above
    else:
        searcher = dense if retriever == RetrieverKind.dense else sparse
    report = evaluate_retriever(dataset, lambda q: ((h.id, h.score) for h in searcher.search(q, k=DEPTH)))
    if as_json:
        typer.echo(json.dumps(report.to_json()))
        return
    name = retriever.value + (f" ({sparse_kind.value}, {fusion.value})" if retriever == RetrieverKind.hybrid else "")
    typer.echo(f"{name} on {data} [{split}], {report.queries} queries, {len(ids)} documents, built in {build_s:.1f} s")
    for key, value in report.to_json().items():
        typer.echo(f"  {key:<16}{value:.4f}" if not key.startswith("latency") else f"  {key:<16}{value:.2f}")

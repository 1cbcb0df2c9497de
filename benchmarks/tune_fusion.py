"""Choose HybridRetriever's fusion defaults on the SciFact *train* queries (never on test).

Each component's top-200 candidates are computed once per train query; every fusion setting is then scored on them
with the same ``HybridRetriever.fuse`` the library uses. Prints a table and writes ``results/tune_fusion.md``.

    PYTHONPATH=src:integrations python benchmarks/tune_fusion.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np

from lorag.embedding import Embedder, EmbeddingCache
from lorag.evaluation import evaluate_run, load_beir
from lorag.models import lorag_home
from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tune_fusion.md"))
    args = parser.parse_args()

    train = load_beir(args.data, split="train")
    ids = list(train.corpus)
    texts = [train.document_text(i) for i in ids]
    embedder = Embedder(args.embedder, cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"), show_progress=True)
    bm25 = BM25Index.from_texts(texts, ids=ids)
    dense = DenseIndex.from_texts(texts, embedder, ids=ids)
    qids = list(train.queries)
    qvecs = embedder.embed_queries([train.queries[q] for q in qids])
    bm25_lists = bm25.search_batch([train.queries[q] for q in qids], k=200)
    dense_lists = dense.search_vectors(qvecs, k=200)

    def score(depth: int, **fusion: object) -> float:
        retriever = HybridRetriever(bm25, dense, depth=depth, **fusion)  # type: ignore[arg-type]
        run = {}
        for qid, b, d in zip(qids, bm25_lists, dense_lists, strict=True):
            hits = retriever.fuse({"bm25": b[:depth], "dense": d[:depth]}, k=100)
            run[qid] = {h.id: h.score for h in hits}
        return evaluate_run(train.qrels, run).ndcg_at_10

    rows = []
    base = {
        "bm25 alone": evaluate_run(
            train.qrels, {q: {h.id: h.score for h in b} for q, b in zip(qids, bm25_lists, strict=True)}
        ),
        "dense alone": evaluate_run(
            train.qrels, {q: {h.id: h.score for h in d} for q, d in zip(qids, dense_lists, strict=True)}
        ),
    }
    for depth in (50, 100, 200):
        for w in (0.5, 1.0, 2.0):
            rows.append((f"rrf k=60 dense weight {w}", depth, score(depth, fusion="rrf", weights={"dense": w})))
        for norm in ("minmax", "zscore"):
            for alpha in np.round(np.arange(0.2, 0.85, 0.1), 2):
                rows.append(
                    (
                        f"convex {norm} alpha={alpha}",
                        depth,
                        score(depth, fusion="convex", alpha=float(alpha), normalization=norm),
                    )
                )
    rows.sort(key=lambda r: -r[2])
    lines = [
        "# Fusion defaults chosen on SciFact train",
        "",
        f"Date: {datetime.date.today()}; machine: {platform.machine()}, 2 cores, 24 GiB, no GPU (shared).",
        "Command: `PYTHONPATH=src:integrations python benchmarks/tune_fusion.py --data ../shared/data/scifact`",
        f"Train queries: {len(qids)}; embedder `{args.embedder}`; BM25 `lucene` with the default tokenizer.",
        "",
        f"BM25 alone nDCG@10 {base['bm25 alone'].ndcg_at_10:.4f}; dense alone {base['dense alone'].ndcg_at_10:.4f}.",
        "",
        "| fusion | depth | train nDCG@10 |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {depth} | {ndcg:.4f} |" for name, depth, ndcg in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

"""Choose HybridRetriever's fusion defaults on the SciFact *train* queries (never on test).

Every setting is scored with ``HybridRetriever.search`` itself (query vectors computed once and passed in). Prints a
table and writes ``benchmarks/results/tune_fusion.md``.

    PYTHONPATH=src:integrations python benchmarks/tune_fusion.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

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
    queries = [train.queries[q] for q in qids]
    qvecs = embedder.embed_queries(queries)

    def ndcg(search) -> float:  # type: ignore[no-untyped-def]
        run = {}
        for i, (qid, query) in enumerate(zip(qids, queries, strict=True)):
            hits = search(query, i)
            run[qid] = {h.id: float(len(hits) - r) for r, h in enumerate(hits)}
        return evaluate_run(train.qrels, run).ndcg_at_10

    bm25_alone = ndcg(lambda q, i: bm25.search(q, k=100))
    dense_alone = ndcg(lambda q, i: dense.search_vectors(qvecs[i : i + 1], k=100)[0])
    rows = []
    for depth in (100, 200, 500):
        settings = [{"fusion": "rrf"}, {"fusion": "rrf", "weights": {"dense": 0.5}}]
        settings += [
            {"fusion": "convex", "normalization": norm, "alpha": alpha}
            for norm in ("minmax", "zscore")
            for alpha in (0.3, 0.4, 0.5, 0.6, 0.7)
        ]
        for setting in settings:
            hybrid = HybridRetriever(bm25, dense, depth=depth, **setting)  # type: ignore[arg-type]
            score = ndcg(lambda q, i, h=hybrid: h.search(q, k=100, query_vector=qvecs[i]))
            rows.append((", ".join(f"{k}={v}" for k, v in setting.items()), depth, score))
            print(rows[-1], flush=True)
    rows.sort(key=lambda r: -r[2])
    lines = [
        "# Fusion defaults chosen on SciFact train",
        "",
        f"Date: {datetime.date.today()}; machine: 2 cores, 24 GiB, no GPU (shared with other engineers' jobs).",
        "Command: `PYTHONPATH=src:integrations python benchmarks/tune_fusion.py --data ../shared/data/scifact`",
        f"Train queries: {len(qids)}; embedder `{args.embedder}`; BM25 `lucene` (k1 1.5, b 0.75), default tokenizer.",
        "Documents missing from one component's candidates get that component's exact score (see HybridRetriever).",
        "",
        f"BM25 alone nDCG@10 {bm25_alone:.4f}; dense alone {dense_alone:.4f}.",
        "",
        "| fusion | depth | train nDCG@10 |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {depth} | {score:.4f} |" for name, depth, score in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

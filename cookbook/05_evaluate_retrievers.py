"""Recipe 5: evaluate retrievers on a BEIR dataset: BM25, dense, hybrid (RRF and convex) and the framework peers.

Choosing a retriever is an empirical question: lexical BM25 wins on exact terms, dense embeddings on paraphrases,
and fusion usually beats both, but by how much depends on your data. ``lorag.evaluation`` loads any BEIR-format
dataset (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``) and scores a run with BEIR's metrics through
pytrec_eval, timing each query. This recipe runs six retrievers on the same queries, one query at a time, k = 100:

- lorag ``BM25Index``, ``DenseIndex`` (MiniLM, FAISS flat), ``HybridRetriever`` with ``fusion="rrf"`` and ``"convex"``;
- LangChain's ``EnsembleRetriever`` over ``BM25Retriever`` + a FAISS vector store, weights 0.5/0.5;
- LlamaIndex's ``QueryFusionRetriever`` (``mode="reciprocal_rerank"``) over its BM25 and vector retrievers.

Every system embeds each query live with the same MiniLM model (``LoragEmbeddings`` / ``LoragEmbedding`` for the
peers); the corpus is embedded once and the same vectors go to every vector store. torch and FAISS run on one
thread so latencies compare like for like. The plot puts nDCG@10 and p50 latency side by side.

    python cookbook/05_evaluate_retrievers.py                    # BEIR SciFact test (--data ../shared/data/scifact)
    python cookbook/05_evaluate_retrievers.py --data path/to/beir  # any BEIR dataset
    python cookbook/05_evaluate_retrievers.py --size smoke       # 153 sections of the bundled docs, 16 questions (CI)

The smoke dataset is built from ``examples/fastapi-docs`` (each headed section a document, questions judged by
hand in ``cookbook/_docs_beir.py``), so it is tiny and easy: use it to check the plumbing, not to rank systems.
Figures at full size (BEIR SciFact test, 300 queries, 5,183 documents; 2026-11-27, 2-core CPU heavily shared
by other jobs while it ran, so the latencies are noisy and only their order of magnitude means anything):

| system | nDCG@10 | Recall@100 | MRR@10 | p50 ms |
| --- | ---: | ---: | ---: | ---: |
| lorag BM25 | 0.6863 | 0.9127 | 0.6492 | 0.2 |
| lorag dense (MiniLM) | 0.6451 | 0.9250 | 0.6047 | 114 |
| lorag hybrid rrf | 0.7170 | 0.9583 | 0.6826 | 85 |
| lorag hybrid convex (default) | 0.7372 | 0.9550 | 0.7050 | 193 |
| LangChain EnsembleRetriever 0.5/0.5 | 0.6200 | 0.9270 | 0.5832 | 144 |
| LlamaIndex QueryFusionRetriever reciprocal_rerank | 0.7165 | 0.9483 | 0.6829 | 570 |

The nDCG@10 figures equal those of ``benchmarks/retrieval.py`` (same systems; its table in
``benchmarks/results/retrieval.md`` also has latencies from a quieter run, ~30 ms for lorag's dense and hybrid
retrievers). LangChain's ensemble trails BM25 alone because its ``BM25Retriever`` splits on whitespace only
(no lowercasing, stemming or stopwords); give it lorag's tokenizer and it reaches RRF's level.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from _common import ROOT, parser, write_results
from _docs_beir import write_docs_beir
from lorag.embedding import Embedder, EmbeddingCache
from lorag.evaluation import evaluate_retriever, load_beir
from lorag.models import lorag_home
from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever

K = 100
Search = Callable[[str], Iterable[tuple[str, float]]]


def main() -> None:
    p = parser(__doc__.splitlines()[0], "05_evaluate_retrievers")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact", help="BEIR dataset")
    p.add_argument("--embedder", default="minilm")
    args = p.parse_args()
    logging.getLogger("bm25s").setLevel(logging.ERROR)
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_docs_beir(Path(tmp)) if args.size == "smoke" else args.data
        data = load_beir(data_dir, split="test")
    ids = list(data.corpus)
    texts = [data.document_text(i) for i in ids]
    # The corpus is embedded once (cached on disk, so reruns are free); every system reuses these vectors.
    cached = Embedder(args.embedder, cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"), show_progress=True)
    vectors = cached.embed_documents(texts)
    embedder = Embedder(args.embedder)  # no cache: each system pays for embedding every query
    embedder.embed_query("warm up")

    def lorag_bm25() -> Search:
        index = BM25Index.from_texts(texts, ids=ids)
        return lambda q: ((h.id, h.score) for h in index.search(q, k=K))

    def lorag_dense() -> Search:
        index = DenseIndex.from_texts(texts, embedder, ids=ids, embeddings=vectors)
        return lambda q: ((h.id, h.score) for h in index.search(q, k=K))

    def lorag_hybrid(fusion: str) -> Callable[[], Search]:
        def build() -> Search:
            hybrid = HybridRetriever.from_texts(texts, embedder, ids=ids, embeddings=vectors, fusion=fusion)
            return lambda q: ((h.id, h.score) for h in hybrid.search(q, k=K))

        return build

    def langchain_ensemble() -> Search:
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document

        from langchain_lorag import LoragEmbeddings

        docs = [Document(page_content=t, metadata={"id": i}) for t, i in zip(texts, ids, strict=True)]
        store = FAISS.from_embeddings(
            [(t, v.tolist()) for t, v in zip(texts, vectors, strict=True)],
            LoragEmbeddings(model=args.embedder),
            metadatas=[{"id": i} for i in ids],
        )
        ensemble = EnsembleRetriever(
            retrievers=[BM25Retriever.from_documents(docs, k=K), store.as_retriever(search_kwargs={"k": K})],
            weights=[0.5, 0.5],
        )
        return lambda q: ((d.metadata["id"], 0.0) for d in ensemble.invoke(q)[:K])

    def llamaindex_fusion() -> Search:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.core.retrievers import QueryFusionRetriever
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        from llama_index.embeddings.lorag import LoragEmbedding

        nodes = [TextNode(id_=i, text=t, embedding=v.tolist()) for i, t, v in zip(ids, texts, vectors, strict=True)]
        index = VectorStoreIndex(nodes, embed_model=LoragEmbedding(model_name=args.embedder))
        fusion = QueryFusionRetriever(
            [index.as_retriever(similarity_top_k=K), BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=K)],
            llm=MockLLM(),  # num_queries=1: no query rewriting, so the LLM is never called
            mode="reciprocal_rerank",
            similarity_top_k=K,
            num_queries=1,
            use_async=False,
        )
        return lambda q: ((n.node.node_id, float(n.score or 0.0)) for n in fusion.retrieve(q))

    systems: list[tuple[str, Callable[[], Search]]] = [
        ("lorag BM25", lorag_bm25),
        ("lorag dense", lorag_dense),
        ("lorag hybrid rrf", lorag_hybrid("rrf")),
        ("lorag hybrid convex", lorag_hybrid("convex")),
        ("LangChain Ensemble 0.5/0.5", langchain_ensemble),
        ("LlamaIndex QueryFusion rrf", llamaindex_fusion),
    ]
    rows = []
    for name, build in systems:
        started = time.perf_counter()
        search = build()
        build_s = time.perf_counter() - started
        report = evaluate_retriever(data, search)
        rows.append({"system": name, **report.to_json(), "build_s": round(build_s, 3)})
        print(
            f"{name:28s} nDCG@10 {report.ndcg_at_10:.4f}  R@100 {report.recall_at_100:.4f}  "
            f"p50 {report.latency_ms_p50:.2f} ms",
            flush=True,
        )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "retrievers.png", f"{Path(data_dir).name if args.size == 'full' else 'bundled docs'}")
    write_results(
        args.out,
        {
            "dataset": "bundled-docs" if args.size == "smoke" else str(args.data),
            "documents": len(ids),
            "queries": len(data.queries),
            "k": K,
            "systems": rows,
            "plot": "retrievers.png",
        },
    )


def plot(rows: list[dict], path: Path, dataset: str) -> None:
    """nDCG@10 and p50 latency side by side, one bar per system (lorag blue, peers orange)."""
    names = [r["system"] for r in rows]
    colors = ["tab:blue" if n.startswith("lorag") else "tab:orange" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    left.barh(names, [r["ndcg@10"] for r in rows], color=colors)
    left.set_xlabel("nDCG@10 (higher is better)")
    right.barh(names, [r["latency_ms_p50"] for r in rows], color=colors)
    right.set_xlabel("p50 latency per query, ms (lower is better)")
    left.invert_yaxis()
    for ax, key, fmt in ((left, "ndcg@10", "{:.3f}"), (right, "latency_ms_p50", "{:.2f}")):
        for i, r in enumerate(rows):
            ax.text(r[key], i, " " + fmt.format(r[key]), va="center", fontsize=8)
        ax.margins(x=0.2)
    fig.suptitle(f"Retrievers on {dataset}: quality and speed (k = {K}, one query at a time, 1 thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""Real vector stores under lorag's hybrid vs the stores' own hybrid search, on BEIR SciFact (test): one run, one table.

Rows: lorag's FAISS hybrid (the reference); lorag's BM25 + fusion over a real PostgreSQL 16 + pgvector
(langchain-postgres ``PGVector``: exact scan, and over an HNSW index) and over Qdrant local mode
(``QdrantVectorStore``); and ``fusion="store"``, where the store ranks and fuses by itself: ``PGVectorStore`` with a
``HybridSearchConfig`` (Postgres full-text ``ts_rank_cd`` + vectors, its default weighted sum and RRF) and Qdrant
sparse + dense (lorag's BM25 as sparse vectors with Qdrant's IDF, RRF and DBSF).

Same embeddings everywhere: the corpus vectors come from lorag's embedding cache and every query is embedded once, up
front, by the same ``minilm`` model; each system gets those vectors (FAISS through ``query_vector``, the stores through
an embeddings wrapper that looks them up), so latency is retrieval alone and index time excludes embedding. Loading and
scoring (pytrec_eval nDCG@10) are ``benchmarks/retrieval.py``'s: ``lorag.evaluation.load_beir`` and ``evaluate_run``.

    PYTHONPATH=src:integrations python benchmarks/stores.py /work/shared/data/scifact
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import os
import platform
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests" / "retrieval")]

from lorag.embedding import Embedder, EmbeddingCache  # noqa: E402
from lorag.evaluation import RetrievalReport, evaluate_run, load_beir  # noqa: E402
from lorag.evaluation.metrics import latency_percentiles  # noqa: E402
from lorag.models import lorag_home  # noqa: E402
from lorag.retrieval import BM25Index, DenseIndex, HybridRetriever  # noqa: E402
from retrieval import _command, _memory_gib  # noqa: E402 - benchmarks/retrieval.py, for the same run record

K = 100
#: The HNSW row's index: pgvector's default build parameters, spelled out (searches raise ``hnsw.ef_search`` to the
#: candidate depth, 200; see ``langchain_lorag.store_dialects``).
HNSW_INDEX = "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
Search = Callable[[str], dict[str, float]]


@dataclass
class Row:
    name: str
    index_s: float
    report: RetrievalReport
    p50_with_query_ms: float  # each query's retrieval plus that query's embedding time (measured once, same for all)


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    """The tests' throwaway PostgreSQL 16 + pgvector server (pgserver's binaries, run as ``postgres``)."""
    from store_fixtures import PostgresServer, pg_bin_dir

    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries not found: pip install 'lorag[stores]' (pgserver)")
    server = PostgresServer(bin_dir)
    try:
        yield server
    finally:
        server.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a BEIR dataset directory, e.g. /work/shared/data/scifact")
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--limit", type=int, default=0, help="smoke test: the first N queries (no results file)")
    parser.add_argument("--max-docs", type=int, default=0, help="smoke test: the first N documents only")
    parser.add_argument("--out", default=None, help="results file (default: benchmarks/results/stores.md)")
    parser.add_argument(
        "--only", nargs="+", default=[], help="rows whose name holds one of these words, beside the FAISS reference"
    )
    args = parser.parse_args()
    args.command = _command()
    args.load_before = os.getloadavg()
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    # MiniLM cosines can be slightly negative; LangChain warns about every such score (and prints the documents)
    warnings.filterwarnings("ignore", message="Relevance scores must be between 0 and 1")

    data = load_beir(args.data, split="test")
    if args.limit:
        data.queries = dict(list(data.queries.items())[: args.limit])
        data.qrels = {q: data.qrels[q] for q in data.queries}
    ids = list(data.corpus)[: args.max_docs or None]
    texts = [data.document_text(i) for i in ids]
    cached = Embedder(args.embedder, cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"), show_progress=True)
    vectors = np.asarray(cached.embed_documents(texts), dtype=np.float32)
    queries = data.queries
    query_vectors = np.asarray(cached.embed_documents(list(queries.values())), dtype=np.float32)
    live = Embedder(args.embedder)  # what embedding a query costs, uncached, one at a time: timed once per query
    live.embed_query("warm up")
    embed_s: dict[str, float] = {}
    for qid, query in queries.items():
        start = time.perf_counter()
        live.embed_query(query)
        embed_s[qid] = time.perf_counter() - start
    vector_of = {t: v for t, v in zip(texts, vectors, strict=True)}
    vector_of.update(zip(queries.values(), query_vectors, strict=True))

    from langchain_core.embeddings import Embeddings

    class Precomputed(Embeddings):
        """The run's vectors, looked up by text: stores embed nothing themselves."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.embed_query(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            if text not in vector_of:  # the stores' one-off dimension probes
                return cached.embed_query(text).tolist()
            return vector_of[text].tolist()

    systems: dict[str, tuple[Search, float]] = {}
    with contextlib.ExitStack() as stack:
        for position, (name, build) in enumerate(
            builders(args, ids, texts, vectors, vector_of, Precomputed(), stack).items()
        ):
            if position and args.only and not any(word in name for word in args.only):
                continue
            gc.collect()
            start = time.perf_counter()
            search = build()
            systems[name] = (search, time.perf_counter() - start)
            print(f"built {name} in {systems[name][1]:.1f} s", file=sys.stderr, flush=True)
        runs: dict[str, dict[str, dict[str, float]]] = {name: {} for name in systems}
        latencies: dict[str, dict[str, float]] = {name: {} for name in systems}
        names = list(systems)
        for n, (qid, query) in enumerate(queries.items()):
            for name in names[n % len(names) :] + names[: n % len(names)]:  # rotate: every system sees the same load
                start = time.perf_counter()
                runs[name][qid] = systems[name][0](query)
                latencies[name][qid] = time.perf_counter() - start
    rows = [
        Row(
            name,
            systems[name][1],
            evaluate_run(data.qrels, runs[name], list(latencies[name].values())),
            latency_percentiles([s + embed_s[qid] for qid, s in latencies[name].items()])[0],
        )
        for name in systems
    ]
    args.load_after = os.getloadavg()
    text = table(rows, args, len(ids), len(queries))
    print(text)
    if args.out or not (args.limit or args.max_docs):
        Path(args.out or REPO / "benchmarks" / "results" / "stores.md").write_text(text, encoding="utf-8")


def builders(
    args: Any,
    ids: list[str],
    texts: list[str],
    vectors: np.ndarray,
    vector_of: dict[str, np.ndarray],
    embeddings: Any,
    stack: contextlib.ExitStack,
) -> dict[str, Callable[[], Search]]:
    """Each system's build (timed: lorag's BM25 plus the store's insert and indexes; no embedding)."""
    from langchain_lorag.sparse_embeddings import LoragSparseEmbeddings
    from langchain_lorag.vectorstores import LangChainEmbedder, LangChainVectorStoreBackend

    def searcher(retriever: HybridRetriever, by_vector: bool = False) -> Search:
        if by_vector:
            return lambda q: {h.id: h.score for h in retriever.search(q, k=K, query_vector=vector_of[q])}
        return lambda q: {h.id: h.score for h in retriever.search(q, k=K)}

    def faiss_hybrid() -> Search:
        retriever = HybridRetriever(BM25Index(), DenseIndex(LangChainEmbedder(embeddings)))
        retriever.add(texts, ids=ids, embeddings=vectors)
        return searcher(retriever, by_vector=True)

    server = stack.enter_context(postgres())
    dim = vectors.shape[1]

    def pgvector() -> Search:
        from langchain_postgres import PGVector

        store = PGVector(embeddings, connection=server.url, collection_name="scifact", use_jsonb=True)
        retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(store))
        retriever.add(texts, ids=ids)
        return searcher(retriever)

    def pgvector_hnsw() -> Search:
        """PGVector over an HNSW index (pgvector's defaults, stated in the table), alone in its own database: an index
        over several collections would fill the scan's ``hnsw.ef_search`` rows with other collections' documents."""
        from langchain_postgres import PGVector
        from sqlalchemy import create_engine, text

        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE scifact_hnsw"))
        admin.dispose()
        url = f"{server.url.rsplit('/', 1)[0]}/scifact_hnsw"
        store = PGVector(embeddings, connection=url, collection_name="scifact", use_jsonb=True)
        retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(store))
        retriever.add(texts, ids=ids)
        with store.session_maker() as session:  # an HNSW index needs the column's dimension (PGVector sets none)
            session.execute(text(f"ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector({dim})"))
            session.execute(text(f"CREATE INDEX scifact_hnsw ON langchain_pg_embedding USING hnsw {HNSW_INDEX}"))
            session.execute(text("ANALYZE langchain_pg_embedding"))
            session.commit()
        return searcher(retriever)

    def pgvectorstore(fusion_function: Any) -> Callable[[], Search]:
        def build() -> Search:
            from langchain_postgres import PGEngine, PGVectorStore
            from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig

            table = f"scifact_{uuid.uuid4().hex[:8]}"
            config = HybridSearchConfig(
                tsv_column="content_tsv", fusion_function=fusion_function, index_name=f"{table}_tsv_index"
            )
            engine = PGEngine.from_connection_string(server.url)
            stack.callback(lambda: engine._run_as_sync(engine.close()))
            engine.init_vectorstore_table(table, vector_size=vectors.shape[1], hybrid_search_config=config)
            store = PGVectorStore.create_sync(engine, embeddings, table, hybrid_search_config=config)
            retriever = HybridRetriever(BM25Index(), LangChainVectorStoreBackend(store), fusion="store")
            retriever.add(texts, ids=ids)
            store.apply_hybrid_search_index()
            return searcher(retriever)

        return build

    qdrant_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="lorag-qdrant-"))

    def qdrant(fusion: str | None) -> Callable[[], Search]:
        """``fusion=None``: lorag's BM25 + fusion over Qdrant's dense vectors; else Qdrant's own (RRF or DBSF)."""

        def build() -> Search:
            from langchain_qdrant import QdrantVectorStore, RetrievalMode
            from qdrant_client import QdrantClient, models

            client = QdrantClient(path=f"{qdrant_dir}/{fusion or 'dense'}")
            stack.callback(client.close)
            client.create_collection(
                "scifact",
                vectors_config={"dense": models.VectorParams(size=vectors.shape[1], distance=models.Distance.COSINE)},
                sparse_vectors_config={"sparse": models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            mode = RetrievalMode.DENSE if fusion is None else RetrievalMode.HYBRID
            store = QdrantVectorStore(
                client, "scifact", embeddings, retrieval_mode=mode, vector_name="dense",
                sparse_embedding=LoragSparseEmbeddings.fit(texts), sparse_vector_name="sparse",
            )  # fmt: skip
            hybrid_kwargs = {} if fusion is None else {"hybrid_fusion": models.FusionQuery(fusion=fusion)}
            backend = LangChainVectorStoreBackend(store, hybrid_kwargs=hybrid_kwargs)
            retriever = HybridRetriever(BM25Index(), backend, fusion="convex" if fusion is None else "store")
            retriever.add(texts, ids=ids)
            return searcher(retriever)

        return build

    from langchain_postgres.v2.hybrid_search_config import reciprocal_rank_fusion, weighted_sum_ranking

    return {
        "lorag FAISS hybrid (BM25 + FAISS, convex)": faiss_hybrid,
        "lorag BM25 + PGVector (convex)": pgvector,
        "lorag BM25 + PGVector (HNSW, convex)": pgvector_hnsw,
        "PGVectorStore native hybrid (full-text + vector, weighted sum)": pgvectorstore(weighted_sum_ranking),
        "PGVectorStore native hybrid (full-text + vector, RRF)": pgvectorstore(reciprocal_rank_fusion),
        "lorag BM25 + Qdrant (convex)": qdrant(None),
        "Qdrant native sparse + dense (lorag BM25 sparse vectors, RRF)": qdrant("rrf"),
        "Qdrant native sparse + dense (lorag BM25 sparse vectors, DBSF)": qdrant("dbsf"),
    }


def table(rows: list[Row], args: Any, n_docs: int, n_queries: int) -> str:
    ref = rows[0]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Real vector stores: lorag's hybrid over them vs their own hybrid search, BEIR SciFact test",
        "",
        f"- Date: {now}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB, no GPU; shared with other "
        "engineers' jobs, so absolute timings are noisy (ratios come from this one run).",
        "- Load average (1, 5, 15 min) at start: {:.2f}, {:.2f}, {:.2f}; at end: {:.2f}, {:.2f}, {:.2f}.".format(
            *args.load_before, *args.load_after
        ),
        f"- Command: `{args.command}`",
        f"- Data: {n_docs} documents, {n_queries} test queries; k = {K} per query, one query at a time, systems "
        "interleaved (rotating order) so all see the same load.",
        f"- Embeddings: `{args.embedder}` for every row, the same vectors: corpus from lorag's embedding cache, each "
        "query embedded once before the run and handed to every system (FAISS via `query_vector`, the stores via an "
        "embeddings wrapper that looks the vector up). p50/p95 are retrieval alone; *p50 + embed* adds to each query's "
        "retrieval time the time the same model took to embed that query, uncached, measured once before the run "
        "(one torch thread), so it is what a system that embeds its own queries would show. Index time is lorag's "
        "BM25 plus the store's inserts and indexes, no embedding.",
        "- Stores: PostgreSQL 16 + pgvector 0.6 from the pgserver wheel on 127.0.0.1 (exact scan, no ANN index, except "
        f"the HNSW row: `USING hnsw {HNSW_INDEX}`, `hnsw.ef_search` raised to the depth, 200, per search); Qdrant "
        "in local mode (`QdrantClient(path=...)`: the client's in-process Python engine, not the Rust server, so its "
        "latencies say little about a Qdrant cluster).",
        "- lorag rows: BM25 + convex fusion (alpha 0.5, z-score, depth 200: the defaults chosen on SciFact train). "
        '`fusion="store"` rows: the store ranks and fuses (depth 200 candidates per ranking). PGVectorStore\'s '
        "lexical side is Postgres full-text search (`plainto_tsquery`, which requires every query term, ranked by "
        "`ts_rank_cd`); Qdrant's is lorag's BM25 as sparse vectors (`LoragSparseEmbeddings`, IDF by Qdrant, "
        "average length measured on the corpus), fused by RRF or DBSF (distribution-based score fusion).",
        "- Ratios against the first row: nDCG diff = row - reference; p50 and index ratios = row / reference.",
        "",
        "| system | nDCG@10 | Recall@100 | p50 ms | p95 ms | p50 + embed ms | index s | nDCG diff | p50 ratio "
        "| p50 + embed ratio | index ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rep = r.report
        lines.append(
            f"| {r.name} | {rep.ndcg_at_10:.4f} | {rep.recall_at_100:.4f} | {rep.latency_ms_p50:.2f} | "
            f"{rep.latency_ms_p95:.2f} | {r.p50_with_query_ms:.2f} | {r.index_s:.1f} | "
            f"{rep.ndcg_at_10 - ref.report.ndcg_at_10:+.4f} | {rep.latency_ms_p50 / ref.report.latency_ms_p50:.2f} | "
            f"{r.p50_with_query_ms / ref.p50_with_query_ms:.2f} | {r.index_s / ref.index_s:.1f} |"
        )
    lines += ["", "Target (issue 20): lorag BM25 + either store within 0.005 nDCG@10 of lorag's FAISS hybrid and "
              "within 2x its p50.", ""]  # fmt: skip
    for r in rows:
        if r.name.startswith("lorag BM25 +"):
            diff = r.report.ndcg_at_10 - ref.report.ndcg_at_10
            ratio = r.report.latency_ms_p50 / ref.report.latency_ms_p50
            with_query = r.p50_with_query_ms / ref.p50_with_query_ms
            quality = "met" if abs(diff) <= 0.005 else "not met"
            lines.append(
                f"- {r.name}: nDCG diff {diff:+.4f} ({quality}); p50 ratio, retrieval alone {ratio:.2f} "
                f"({'met' if ratio <= 2.0 else 'not met'}), with query embedding {with_query:.2f} "
                f"({'met' if with_query <= 2.0 else 'not met'})"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

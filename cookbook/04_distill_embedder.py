"""Recipe 4: distil MiniLM into a smaller, faster embedder and plug it into the hybrid retriever.

Query embedding is most of a hybrid retriever's latency on a CPU, and embedding the corpus is most of its indexing
time. A student distilled from the teacher on *your own corpus texts* (no labels, no queries) keeps most of the
teacher's retrieval quality at a fraction of the cost. ``lorag.training.distill`` trains it with
sentence-transformers' trainer: the teacher embeds the texts once, the student learns to reproduce those vectors
(MSE) and their in-batch similarity structure (KL). Students:

- ``layers:3``: the teacher with 3 of its 6 transformer layers (spread out), then trained: half the layers;
- ``static`` (full size; ``--students static`` at smoke): Model2Vec-style token vectors averaged, no transformer
  at all: orders of magnitude faster, at a larger quality cost.

Each model then backs a ``HybridRetriever`` (BM25 + FAISS, convex fusion) and a dense-only ``DenseIndex``, scored
with ``lorag.evaluation`` (pytrec_eval nDCG@10) on a BEIR dataset; encode speed is sentences/s over the same corpus
texts for every model, measured back to back in one run. The plot ``retention.png`` puts each model at
(sentences/s, nDCG@10). The same training from the shell:

    lorag distill --teacher minilm --student layers:3 --data ../shared/data/scifact/corpus.jsonl.gz --output student

Run it:

    python cookbook/04_distill_embedder.py                  # SciFact (--data ../shared/data/scifact): layers:3, static
    python cookbook/04_distill_embedder.py --size smoke     # bundled docs, layers:3, 20 steps (CI)

Smoke trains on the 153 sections of ``examples/fastapi-docs`` and evaluates on 16 hand-judged questions
(``cookbook/_docs_beir.py``): enough to see the pipeline work, too small for quality figures. One smoke run
(2026-11-27, shared 2-core CPU): the ``layers:3`` student after 20 steps kept 90% of the teacher's hybrid nDCG@10
(0.639 vs 0.708; dense alone 76%) at 1.75x the teacher's sentences/s, with 17.4M instead of 22.7M parameters.
``--students static`` at smoke size (20 steps, after a one-off pass of the teacher over its 30,522 tokens):
91% of the hybrid nDCG@10 (0.642; dense alone 84%) at 151x the teacher's sentences/s.

Figures at full size (BEIR SciFact test: 300 queries, all 5,183 documents; 2026-11-27, 2-core CPU shared with
other jobs, so sentences/s are low in absolute terms; both models timed back to back on the same 1,000 texts):

| model | hybrid nDCG@10 | retention | dense nDCG@10 | retention | sentences/s | speedup | training |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| minilm (teacher) | 0.7372 | 100% | 0.6451 | 100% | 6.7 | 1.0x | - |
| student static | 0.7006 | 95.0% | 0.5514 | 85.5% | 649 | 97x | 105 s (195 steps) |

That row is from ``--students static`` (``python cookbook/04_distill_embedder.py --data ../shared/data/scifact
--students static``); BM25 in the hybrid retriever makes up for most of what the static student loses alone. The
``layers:3`` student at full size was not run for this recipe (one epoch over 5,183 texts and re-embedding the
corpus take over an hour on the shared machine). Comparable figures (dense retrieval on a 1,000-document SciFact
sub-corpus, students trained on corpus texts only) are in ``benchmarks/results/distill.md``, made by
``benchmarks/distill.py`` (2026-11-28): ``layers:3`` kept 95.9% of minilm's nDCG@10 at 2.0x its encode speed after
6.9 min of training, static 95.2% at 87x, and the teacher itself through ``Embedder(backend="openvino")`` (int8)
100.3% at 3.5x.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

from _common import ROOT, parser, write_results
from _docs_beir import write_docs_beir
from lorag.embedding import Embedder, EmbeddingCache
from lorag.evaluation import BeirDataset, evaluate_retriever, load_beir
from lorag.models import lorag_home
from lorag.retrieval import DenseIndex, HybridRetriever
from lorag.training.distill import DistillConfig, distill

TEACHER = "minilm"


def score(data: BeirDataset, ids: list[str], texts: list[str], embedder: Embedder) -> dict[str, float]:
    """nDCG@10 (and Recall@100) of the dense index and of the hybrid retriever built on ``embedder``."""
    vectors = embedder.embed_documents(texts)
    dense = DenseIndex.from_texts(texts, embedder, ids=ids, embeddings=vectors)
    hybrid = HybridRetriever.from_texts(texts, embedder, ids=ids, embeddings=vectors)
    d = evaluate_retriever(data, lambda q: ((h.id, h.score) for h in dense.search(q, k=100)))
    h = evaluate_retriever(data, lambda q: ((h.id, h.score) for h in hybrid.search(q, k=100)))
    return {
        "dense_ndcg@10": d.ndcg_at_10,
        "hybrid_ndcg@10": h.ndcg_at_10,
        "hybrid_recall@100": h.recall_at_100,
        "hybrid_latency_ms_p50": h.latency_ms_p50,
    }


def encode_speed(model: str, texts: list[str]) -> tuple[float, int]:
    """Encode throughput in sentences/s (no cache, after one warm-up batch) and the model's parameter count."""
    embedder = Embedder(model, batch_size=32)
    embedder.embed_documents(texts[:32])
    started = time.perf_counter()
    embedder.embed_documents(texts)
    return len(texts) / (time.perf_counter() - started), sum(p.numel() for p in embedder.model.parameters())


def main() -> None:
    p = parser(__doc__.splitlines()[0], "04_distill_embedder")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact", help="BEIR dataset")
    p.add_argument("--students", default=None, help="comma-separated specs (default: layers:3 + static at full)")
    p.add_argument("--speed-texts", type=int, default=1000, help="corpus texts timed for sentences/s")
    args = p.parse_args()
    smoke = args.size == "smoke"
    students = (args.students or ("layers:3" if smoke else "layers:3,static")).split(",")

    with tempfile.TemporaryDirectory() as tmp:
        data = load_beir(write_docs_beir(Path(tmp) / "beir") if smoke else args.data, split="test")
        ids = list(data.corpus)
        texts = [data.document_text(i) for i in ids]  # the corpus is the only training data: no queries, no labels
        cache = EmbeddingCache(lorag_home() / "embeddings.sqlite")  # the teacher embeds each text once, ever
        speed_sample = texts[: args.speed_texts]

        models = [{"name": f"{TEACHER} (teacher)", "path": TEACHER, "kind": "teacher", "train_seconds": 0.0}]
        for spec in students:
            static = spec == "static"
            config = DistillConfig(
                max_steps=20 if smoke else -1,  # smoke: 20 steps of 16 texts; full: whole epochs of the corpus
                # full: a static student needs more passes and larger steps (settings of benchmarks/distill.py)
                epochs=5.0 if static else 1.0,
                batch_size=16 if smoke else (128 if static else 32),
                learning_rate=5e-2 if static and not smoke else None,
                max_seq_length=128,  # train on the first 128 tokens (faster); the student still reads 256
                eval_steps=20 if smoke else None,
                save_steps=20 if smoke else None,
                show_progress=not smoke,
            )
            out = Path(tmp) / spec.replace(":", "-")
            result = distill(TEACHER, spec, out, texts=texts, config=config, cache=cache)
            print(f"{spec}: {result.steps} steps in {result.train_seconds:.0f} s, loss {result.train_loss:.4f}")
            models.append(
                {
                    "name": f"student {spec}",
                    "path": str(out),
                    "kind": spec,
                    "steps": result.steps,
                    "train_seconds": round(result.train_seconds, 1),
                    "train_loss": result.train_loss,
                }
            )

        for model in models:
            model["sentences_per_s"], model["parameters"] = encode_speed(model["path"], speed_sample)
            cached = cache if model["kind"] == "teacher" else None  # students are scored on fresh vectors
            model.update(score(data, ids, texts, Embedder(model["path"], cache=cached, show_progress=not smoke)))
            print(
                f"{model['name']:24s} {model['sentences_per_s']:8.1f} sentences/s  "
                f"dense nDCG@10 {model['dense_ndcg@10']:.4f}  hybrid nDCG@10 {model['hybrid_ndcg@10']:.4f}",
                flush=True,
            )

    teacher = models[0]
    for model in models:
        model.pop("path")
        model["speedup"] = model["sentences_per_s"] / teacher["sentences_per_s"]
        model["hybrid_retention"] = model["hybrid_ndcg@10"] / teacher["hybrid_ndcg@10"]
        model["dense_retention"] = model["dense_ndcg@10"] / teacher["dense_ndcg@10"]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(models, args.out / "retention.png", "bundled docs" if smoke else args.data.name)
    write_results(
        args.out,
        {
            "dataset": "bundled-docs" if smoke else str(args.data),
            "documents": len(ids),
            "queries": len(data.queries),
            "speed_texts": len(speed_sample),
            "models": models,
            "plot": "retention.png",
        },
    )


def plot(models: list[dict], path: Path, dataset: str) -> None:
    """One point per model at (sentences/s, nDCG@10): hybrid filled, dense-only hollow."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in models:
        x = model["sentences_per_s"]
        ax.scatter(x, model["hybrid_ndcg@10"], s=60, color="tab:blue", zorder=3)
        ax.scatter(x, model["dense_ndcg@10"], s=60, facecolors="none", edgecolors="tab:orange", zorder=3)
        label = f"{model['name']}\n{model['speedup']:.1f}x, {100 * model['hybrid_retention']:.0f}% hybrid nDCG"
        ax.annotate(label, (x, model["hybrid_ndcg@10"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.scatter([], [], color="tab:blue", label="hybrid (BM25 + embedder)")
    ax.scatter([], [], facecolors="none", edgecolors="tab:orange", label="dense only")
    ax.set_xscale("log")
    speeds = [m["sentences_per_s"] for m in models]
    ax.xaxis.set_major_formatter(ScalarFormatter())  # plain numbers; minor labels only over a narrow range
    ax.xaxis.set_minor_formatter(ScalarFormatter() if max(speeds) < 10 * min(speeds) else NullFormatter())
    ax.set_xlabel("encode speed, sentences/s (log scale)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"Distilled students of {TEACHER} on {dataset}: quality retained vs speed")
    ax.legend(loc="lower left", fontsize=8)
    ax.margins(x=0.3, y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""Recipe 7: chunking strategies on long documents: how many chunks, how big, and does BM25 find the answer.

Chunking decides what a retriever can return: chunks too big waste the LLM's context on text around the answer,
chunks too small cut the answer from the words that make it findable. This recipe splits long documents with each
of lorag's splitters (``lorag.chunking.make_splitter``: recursive, token, sentence, markdown, semantic; sizes in
MiniLM tokens, overlap 1/8 of the size) and with LangChain's ``RecursiveCharacterTextSplitter`` at its defaults
(4,000 characters, overlap 200), indexes every chunk of every document in one lorag ``BM25Index`` and asks each
question. A question counts as answered when a top-5 chunk of the right document contains a gold answer span
(exact character offsets: every lorag chunk knows where it came from). The plot ``chunking.png`` shows
answer-recall@5 against the MiniLM tokens those 5 chunks would put into a prompt.

    python cookbook/07_chunking_strategies.py                   # SQuAD v1.1 dev (--data ../shared/data), 12 articles
    python cookbook/07_chunking_strategies.py --max-articles 0  # all 48 articles, 10,570 questions
    python cookbook/07_chunking_strategies.py --size smoke      # the bundled docs, 13 questions (CI)

Full size: the first 12 SQuAD v1.1 dev articles (``--max-articles 0``: all 48), each article's paragraphs joined
into one long document, 3,468 questions with gold answer offsets, as ``benchmarks/chunking.py`` does; sizes
128/256/512 tokens. Smoke size: the 12 Markdown files of ``examples/fastapi-docs`` with questions whose answer
strings appear in them (every occurrence counts as a gold span); sizes 128/256.

Figures at full size (2026-11-27, 2-core CPU; ``--size full``; recall does not depend on the machine):

| splitter | size | chunks | mean tokens | answer-recall@5 | tokens/question |
| --- | ---: | ---: | ---: | ---: | ---: |
| LangChain RecursiveCharacterTextSplitter() | 4000 chars | 116 | 717 | 0.963 | 3675 |
| lorag recursive (= markdown on plain text) | 128 | 819 | 103 | 0.886 | 517 |
| lorag token | 128 | 745 | 127 | 0.888 | 638 |
| lorag sentence | 128 | 772 | 110 | 0.885 | 551 |
| lorag semantic | 128 | 792 | 105 | 0.877 | 535 |
| lorag recursive (= markdown) | 256 | 440 | 191 | 0.927 | 978 |
| lorag token | 256 | 375 | 252 | 0.924 | 1274 |
| lorag sentence | 256 | 377 | 234 | 0.918 | 1177 |
| lorag semantic | 256 | 401 | 207 | 0.912 | 1113 |
| lorag recursive (= markdown) | 512 | 200 | 420 | 0.946 | 2158 |
| lorag token / sentence | 512 | 189 / 190 | 499 / 479 | 0.952 | 2539 / 2450 |
| lorag semantic | 512 | 214 | 388 | 0.940 | 2130 |

Read it as a trade-off: LangChain's 4,000-character default finds 96% of answers but puts ~3,700 tokens into the
prompt per question; lorag recursive at 256 tokens finds 93% with ~1,000, a quarter of the prompt. SQuAD has no
Markdown headers, so the markdown splitter falls back to the recursive one there (identical rows).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from _common import DOCS, ROOT, parser, write_results
from lorag.chunking import TokenLength, load_tokenizer, make_splitter
from lorag.embedding import Embedder, EmbeddingCache
from lorag.models import lorag_home
from lorag.retrieval import BM25Index

Span = tuple[int, int, str]  # start, end, text
METHODS = ("recursive", "token", "sentence", "markdown", "semantic")

#: Smoke questions on the bundled docs: (question, file, a string of the answer that occurs in that file).
DOC_QUESTIONS = [
    ("How long are Let's Encrypt certificates valid?", "deployment/https.md", "about 3 months"),
    ("Which organisation runs Let's Encrypt?", "deployment/https.md", "Linux Foundation"),
    ("How long do browsers cache CORS responses by default?", "tutorial/cors.md", "Defaults to `600`"),
    ("What is an origin made of?", "tutorial/cors.md", "combination of protocol"),
    ("What should I use for heavy background computation across servers?", "tutorial/background-tasks.md", "Celery"),
    ("What does mounting an application mean?", "tutorial/static-files.md", 'adding a complete "independent"'),
    ("Which package must be installed to use TestClient?", "tutorial/testing.md", "httpx"),
    ("What detail does the 404 HTTPException example return?", "tutorial/handling-errors.md", "Item not found"),
    ("Which path must be declared before /users/{user_id}?", "tutorial/path-params.md", "`/users/me`"),
    ("How do I make a query parameter optional?", "tutorial/query-params.md", "set the default as `None`"),
    ("Which tool renders the alternative automatic API docs?", "tutorial/first-steps.md", "ReDoc"),
    ("How do I declare a path parameter that contains a path?", "tutorial/path-params.md", "file_path:path"),
    ("When do I declare path operation functions with async def?", "async.md", "functions* with `async def`"),
]


@dataclass
class Question:
    text: str
    document: int
    spans: list[tuple[int, int]]  # gold answer offsets in that document


def load_docs() -> tuple[list[str], list[Question]]:
    """The bundled Markdown files, and the smoke questions with every occurrence of their answer as a gold span."""
    paths = sorted(p for p in DOCS.rglob("*.md") if p.name != "SOURCE.md")
    names = [p.relative_to(DOCS).as_posix() for p in paths]
    documents = [p.read_text(encoding="utf-8") for p in paths]
    questions = []
    for text, name, answer in DOC_QUESTIONS:
        doc = documents[names.index(name)]
        starts = [i for i in range(len(doc)) if doc.startswith(answer, i)]
        if not starts:
            raise ValueError(f"answer {answer!r} does not occur in {name}")
        questions.append(Question(text, names.index(name), [(s, s + len(answer)) for s in starts]))
    return documents, questions


def load_squad(path: Path, max_articles: int | None = None) -> tuple[list[str], list[Question]]:
    """Each SQuAD article's paragraphs joined by blank lines into one document; answer offsets moved along."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".json"))
        articles = json.load(io.TextIOWrapper(zf.open(name), encoding="utf-8"))["data"]
    documents, questions = [], []
    for article in articles[:max_articles]:
        parts, offset = [], 0
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                spans = [
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"])) for a in qa["answers"]
                ]
                questions.append(Question(qa["question"], len(documents), spans))
            parts.append(para["context"])
            offset += len(para["context"]) + 2
        documents.append("\n\n".join(parts))
    return documents, questions


def main() -> None:
    p = parser(__doc__.splitlines()[0], "07_chunking_strategies")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder with squad-v1.1/")
    p.add_argument("--max-articles", type=int, default=12, help="full size: the first N of the 48 articles (0: all)")
    args = p.parse_args()
    smoke = args.size == "smoke"
    documents, questions = (
        load_docs() if smoke else load_squad(args.data / "squad-v1.1" / "dev-v1.1.json.zip", args.max_articles or None)
    )
    for q in questions:  # the score below means nothing unless the gold offsets land on real text
        assert all(0 <= s < e <= len(documents[q.document]) for s, e in q.spans)
    minilm = TokenLength(load_tokenizer("minilm"))
    embedder = Embedder("minilm", cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"))  # semantic splitter

    def lorag_split(method: str, size: int) -> Callable[[str], list[Span]]:
        kwargs: dict = {"embedder": embedder, "min_chunk_size": size // 4} if method == "semantic" else {}
        overlap = 0 if method == "semantic" else size // 8
        splitter = make_splitter(method, size, overlap, minilm, **kwargs)
        return lambda text: [(c.start, c.end, c.text) for c in splitter.split(text)]

    def langchain_defaults() -> Callable[[str], list[Span]]:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(add_start_index=True)  # defaults: 4000 characters, overlap 200
        return lambda text: [
            (d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content), d.page_content)
            for d in splitter.create_documents([text])
        ]

    configs: list[tuple[str, int | None, Callable[[], Callable[[str], list[Span]]]]] = [
        ("LangChain RecursiveCharacterTextSplitter (defaults)", None, langchain_defaults)
    ]
    for size in (128, 256) if smoke else (128, 256, 512):
        configs += [(f"lorag {m}", size, lambda m=m, s=size: lorag_split(m, s)) for m in METHODS]

    rows = []
    for name, size, build in configs:
        split = build()
        started = time.perf_counter()
        chunks = [(d, *span) for d, text in enumerate(documents) for span in split(text)]
        chunk_seconds = time.perf_counter() - started
        tokens = np.array(minilm.many([c[3] for c in chunks]))
        index = BM25Index.from_texts([c[3] for c in chunks], ids=[str(i) for i in range(len(chunks))])
        top = index.search_batch([q.text for q in questions], k=5)
        hits1 = hits5 = returned = 0
        for q, hits in zip(questions, top, strict=True):
            rows_ = [int(h.id) for h in hits]
            found = [
                chunks[i][0] == q.document and any(chunks[i][1] <= s and e <= chunks[i][2] for s, e in q.spans)
                for i in rows_
            ]
            hits1 += bool(found and found[0])
            hits5 += any(found)
            returned += int(tokens[rows_].sum())
        n = len(questions)
        row = {
            "splitter": name,
            "size_tokens": size,
            "chunks": len(chunks),
            "mean_tokens": float(tokens.mean()),
            "answer_recall@1": hits1 / n,
            "answer_recall@5": hits5 / n,
            "tokens_per_question": returned / n,
            "chunk_seconds": round(chunk_seconds, 3),
        }
        rows.append(row)
        print(
            f"{name:52s} {size or '':>4} chunks {len(chunks):6d}  mean tokens {row['mean_tokens']:6.1f}  "
            f"recall@5 {row['answer_recall@5']:.3f}  tokens/question {row['tokens_per_question']:7.0f}",
            flush=True,
        )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "chunking.png", "bundled docs" if smoke else "SQuAD v1.1 dev articles")
    write_results(
        args.out,
        {
            "dataset": "bundled-docs" if smoke else "squad-v1.1-dev",
            "documents": len(documents),
            "questions": len(questions),
            "splitters": rows,
            "plot": "chunking.png",
        },
    )


def plot(rows: list[dict], path: Path, dataset: str) -> None:
    """Answer-recall@5 against tokens returned per question: one line per lorag method (through its sizes)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for method in METHODS:
        points = sorted((r for r in rows if r["splitter"] == f"lorag {method}"), key=lambda r: r["size_tokens"])
        xs, ys = [r["tokens_per_question"] for r in points], [r["answer_recall@5"] for r in points]
        style = "--" if method == "markdown" else "-"  # on plain text it coincides with recursive
        ax.plot(xs, ys, marker="o", linestyle=style, label=f"lorag {method}")
        for r in points:
            ax.annotate(
                str(r["size_tokens"]),
                (r["tokens_per_question"], r["answer_recall@5"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -10),
            )
    for r in rows:
        if r["size_tokens"] is None:
            ax.scatter(
                r["tokens_per_question"],
                r["answer_recall@5"],
                marker="*",
                s=180,
                color="black",
                label="LangChain recursive (defaults: 4000 chars)",
                zorder=3,
            )
    ax.set_xscale("log")
    ax.set_xlabel("MiniLM tokens in the top-5 chunks, per question (prompt cost; log scale)")
    ax.set_ylabel("answer recall@5 (gold span inside a top-5 BM25 chunk)")
    ax.set_title(f"Chunking strategies on {dataset}\n(numbers: chunk size in tokens)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""Chunking benchmark: splitter throughput on the FastAPI docs, and what chunking does for BM25 retrieval on SQuAD.

Part 1 splits the FastAPI Markdown docs with every lorag splitter and with LangChain's
RecursiveCharacterTextSplitter, LlamaIndex's SentenceSplitter and chonkie at equivalent settings (same maximum,
same overlap, same length unit), and reports MB/s, chunk counts and the ratio to LangChain's recursive splitter.

Part 2 joins each SQuAD v1.1 dev article's paragraphs into one long document, chunks it, indexes all chunks of all
articles with BM25 (bm25s, identical for every configuration) and asks every question: the score is the share of
questions whose gold answer span lies inside one of the top-5 chunks; tokens returned per question (minilm tokens)
say what that recall costs in an LLM prompt.

Part 3 (``--parts pathological``, ``chunking_pathological.py``) splits inputs no docs folder has but a user's may
(one 50 MB line, 5 MB without a space, a giant Markdown table) with lorag's and LangChain's recursive splitters, one
process per cell, and reports time and peak memory at sizes 10x apart.

Usage:
    python benchmarks/chunking.py --data ../shared/data [--out benchmarks/results/chunking.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

import chunking_pathological
from lorag.chunking import TokenLength, make_splitter
from lorag.embedding import Embedder, EmbeddingCache
from lorag.models import lorag_home

REPO = Path(__file__).resolve().parents[1]
Span = tuple[int, int, str]  # start, end, text
SplitFn = Callable[[str], list[Span]]


# ---------------------------------------------------------------------------------------------------- splitters


def lorag_split(method: str, size: int, overlap: int, tokenizer: object = None, **kw: object) -> SplitFn:
    splitter = make_splitter(method, size, overlap, tokenizer, **kw)
    return lambda text: [(c.start, c.end, c.text) for c in splitter.split(text)]


def langchain_recursive_strings(size: int, overlap: int) -> SplitFn:
    """LangChain's fastest path: strings only, no offsets (shown for reference, offsets set to -1)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    return lambda text: [(-1, -1, t) for t in splitter.split_text(text)]


def langchain_recursive(size: int, overlap: int, tokenizer: object = None) -> SplitFn:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if tokenizer is None:
        splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, add_start_index=True)
    else:
        splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer, chunk_size=size, chunk_overlap=overlap, add_start_index=True
        )

    def split(text: str) -> list[Span]:
        docs = splitter.create_documents([text])
        return [
            (d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content), d.page_content) for d in docs
        ]

    return split


def llamaindex_sentence(size: int, overlap: int, count_tokens: Callable[[str], list] | None = None) -> SplitFn:
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=size, chunk_overlap=overlap, tokenizer=count_tokens or list)

    def split(text: str) -> list[Span]:
        out, pos = [], 0
        for chunk in splitter.split_text(text):
            start = text.find(chunk, pos)
            out.append((start, start + len(chunk), chunk))
            pos = max(start, 0)
        return out

    return split


def chonkie_split(kind: str, size: int, overlap: int, tokenizer: object = "character") -> SplitFn:
    import chonkie

    if kind == "recursive":  # chonkie's recursive chunker has no overlap
        chunker = chonkie.RecursiveChunker(tokenizer=tokenizer, chunk_size=size)
    elif kind == "sentence":
        chunker = chonkie.SentenceChunker(tokenizer=tokenizer, chunk_size=size, chunk_overlap=overlap)
    else:
        chunker = chonkie.TokenChunker(tokenizer=tokenizer, chunk_size=size, chunk_overlap=overlap)
    return lambda text: [(c.start_index, c.end_index, c.text) for c in chunker.chunk(text)]


# ---------------------------------------------------------------------------------------------------- part 1


def throughput(data: Path, minilm: TokenLength, embedder: Embedder, repeats: int, semantic_files: int) -> list[dict]:
    files = sorted((data / "fastapi-docs" / "md").rglob("*.md"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    texts = [t for t in texts if t.strip()]
    total_megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    hf = minilm.tokenizer

    def ids(text: str) -> list[int]:
        return hf.encode(text, add_special_tokens=False)

    chars, char_overlap, toks, tok_overlap = 1000, 200, 256, 32
    # Semantic chunking is bound by embedding every sentence group (minilm on CPU), so it gets a subset.
    semantic_name = f"lorag semantic (minilm, percentile; first {semantic_files} files only)"
    rows: list[tuple[str, str, str, Callable[[], SplitFn], int]] = [
        ("characters", "lorag recursive", "ours", lambda: lorag_split("recursive", chars, char_overlap), repeats),
        (
            "characters",
            "LangChain RecursiveCharacterTextSplitter",
            "peer",
            lambda: langchain_recursive(chars, char_overlap),
            repeats,
        ),
        (
            "characters",
            "LangChain RecursiveCharacterTextSplitter, split_text (no offsets)",
            "peer",
            lambda: langchain_recursive_strings(chars, char_overlap),
            repeats,
        ),
        (
            "characters",
            "chonkie RecursiveChunker (no overlap)",
            "peer",
            lambda: chonkie_split("recursive", chars, 0),
            repeats,
        ),
        (
            "characters",
            "lorag recursive, markdown preset",
            "ours",
            lambda: lorag_split("recursive", chars, char_overlap, preset="markdown"),
            repeats,
        ),
        ("characters", "lorag markdown", "ours", lambda: lorag_split("markdown", chars, char_overlap), repeats),
        ("characters", "lorag sentence", "ours", lambda: lorag_split("sentence", chars, char_overlap), repeats),
        (
            "characters",
            "LlamaIndex SentenceSplitter (chars)",
            "peer",
            lambda: llamaindex_sentence(chars, char_overlap),
            repeats,
        ),
        (
            "characters",
            "chonkie SentenceChunker",
            "peer",
            lambda: chonkie_split("sentence", chars, char_overlap),
            repeats,
        ),
        (
            "characters",
            semantic_name,
            "ours",
            lambda: lorag_split("semantic", chars, 0, embedder=embedder, min_chunk_size=chars // 4),
            1,
        ),
        ("minilm tokens", "lorag recursive", "ours", lambda: lorag_split("recursive", toks, tok_overlap, minilm), 1),
        (
            "minilm tokens",
            "LangChain RecursiveCharacterTextSplitter",
            "peer",
            lambda: langchain_recursive(toks, tok_overlap, hf),
            1,
        ),
        ("minilm tokens", "lorag token", "ours", lambda: lorag_split("token", toks, tok_overlap, minilm), 1),
        ("minilm tokens", "chonkie TokenChunker", "peer", lambda: chonkie_split("token", toks, tok_overlap, hf), 1),
        ("minilm tokens", "lorag sentence", "ours", lambda: lorag_split("sentence", toks, tok_overlap, minilm), 1),
        (
            "minilm tokens",
            "LlamaIndex SentenceSplitter",
            "peer",
            lambda: llamaindex_sentence(toks, tok_overlap, ids),
            1,
        ),
        (
            "minilm tokens",
            "chonkie SentenceChunker",
            "peer",
            lambda: chonkie_split("sentence", toks, tok_overlap, hf),
            1,
        ),
    ]
    results = []
    for unit, name, side, build, reps in rows:
        split = build()
        docs = texts[:semantic_files] if name == semantic_name else texts
        best = float("inf")
        for _ in range(reps):
            # CPU time of this process: the machine is shared, and wall time mostly measures the neighbours.
            t0 = time.process_time()
            chunks = [split(t) for t in docs]
            best = min(best, time.process_time() - t0)
        megabytes = sum(len(t.encode("utf-8")) for t in docs) / 1e6
        flat = [c for cs in chunks for c in cs]
        size = (
            np.mean(minilm.many([c[2] for c in flat])) if unit != "characters" else np.mean([len(c[2]) for c in flat])
        )
        results.append(
            {
                "unit": unit,
                "splitter": name,
                "side": side,
                "seconds": best,
                "mb_s": megabytes / best,
                "chunks": len(flat),
                "mean_size": float(size),
                "max_size": max(minilm.many([c[2] for c in flat]))
                if unit != "characters"
                else max(len(c[2]) for c in flat),
                "megabytes": megabytes,
            }
        )
        print(f"{unit:14s} {name:45s} {best:8.3f}s {megabytes / best:8.3g} MB/s {len(flat):6d} chunks", flush=True)
    for unit in ("characters", "minilm tokens"):
        base = next(r for r in results if r["unit"] == unit and r["splitter"].startswith("LangChain Recursive"))
        strings = next((r for r in results if r["unit"] == unit and "no offsets" in r["splitter"]), None)
        for r in results:
            if r["unit"] == unit:
                r["vs_langchain"] = r["mb_s"] / base["mb_s"]
                r["vs_langchain_strings"] = r["mb_s"] / strings["mb_s"] if strings else None
    for r in results:
        r["corpus_megabytes"] = total_megabytes
    return results


# ---------------------------------------------------------------------------------------------------- part 2


@dataclass
class Article:
    text: str
    questions: list[tuple[str, list[tuple[int, int]]]]  # question, gold spans in the joined text


def load_squad(path: Path, max_articles: int | None) -> list[Article]:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".json"))
        data = json.load(io.TextIOWrapper(zf.open(name), encoding="utf-8"))["data"]
    articles = []
    for art in data[:max_articles]:
        parts, questions, offset = [], [], 0
        for para in art["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                spans = [(a["answer_start"], a["answer_start"] + len(a["text"])) for a in qa["answers"]]
                # SQuAD's offsets must land on the answer text, or the score below means nothing.
                assert all(context[s:e] == a["text"] for (s, e), a in zip(spans, qa["answers"], strict=True))
                questions.append((qa["question"], [(offset + s, offset + e) for s, e in spans]))
            parts.append(context)
            offset += len(context) + 2
        text = "\n\n".join(parts)
        articles.append(Article(text, questions))
    return articles


def retrieval(
    data: Path, minilm: TokenLength, embedder: Embedder, max_articles: int | None, semantic: bool = True
) -> list[dict]:
    articles = load_squad(data / "squad-v1.1" / "dev-v1.1.json.zip", max_articles)
    questions = [(q, spans, a) for a, art in enumerate(articles) for q, spans in art.questions]
    stemmer = Stemmer.Stemmer("english")
    query_tokens = bm25s.tokenize([q for q, _, _ in questions], stopwords="en", stemmer=stemmer, show_progress=False)
    configs: list[tuple[str, str, Callable[[], SplitFn]]] = [
        ("LangChain recursive, defaults", "4000 chars, overlap 200", lambda: langchain_recursive(4000, 200)),
        ("LangChain recursive", "1000 chars, overlap 200", lambda: langchain_recursive(1000, 200)),
    ]
    for size in (128, 256, 512):
        overlap = size // 8
        configs += [
            c
            for c in [
                (
                    "lorag recursive",
                    f"{size} tokens, overlap {overlap}",
                    lambda s=size, o=overlap: lorag_split("recursive", s, o, minilm),
                ),
                (
                    "lorag token",
                    f"{size} tokens, overlap {overlap}",
                    lambda s=size, o=overlap: lorag_split("token", s, o, minilm),
                ),
                (
                    "lorag sentence",
                    f"{size} tokens, overlap {overlap}",
                    lambda s=size, o=overlap: lorag_split("sentence", s, o, minilm),
                ),
                (
                    "lorag semantic",
                    f"max {size} tokens, min {size // 4}",
                    lambda s=size: lorag_split("semantic", s, 0, minilm, embedder=embedder, min_chunk_size=s // 4),
                ),
            ]
            if semantic or c[0] != "lorag semantic"
        ]
    rows = []
    for name, setting, build in configs:
        split = build()
        t0 = time.perf_counter()
        chunks = [(a, s, e, t) for a, art in enumerate(articles) for s, e, t in split(art.text)]
        seconds = time.perf_counter() - t0
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize([c[3] for c in chunks], stopwords="en", stemmer=stemmer, show_progress=False),
            show_progress=False,
        )
        top, _ = retriever.retrieve(query_tokens, k=5, show_progress=False)
        token_counts = np.array(minilm.many([c[3] for c in chunks]))
        hits1 = hits5 = 0
        returned = 0
        for (_, spans, art), ids in zip(questions, top, strict=True):
            found = [
                any(chunks[i][0] == art and chunks[i][1] <= s and e <= chunks[i][2] for s, e in spans) for i in ids
            ]
            hits5 += any(found)
            hits1 += found[0]
            returned += int(token_counts[ids].sum())
        n = len(questions)
        row = {
            "splitter": name,
            "setting": setting,
            "chunks": len(chunks),
            "mean_tokens": float(token_counts.mean()),
            "max_tokens": int(token_counts.max()),
            "answer_in_top1": hits1 / n,
            "answer_in_top5": hits5 / n,
            "tokens_per_question": returned / n,
            "chunk_seconds": seconds,
            "articles": len(articles),
            "questions": n,
        }
        rows.append(row)
        print(
            f"{name:32s} {setting:28s} chunks={len(chunks):6d} top5={hits5 / n:.3f} top1={hits1 / n:.3f} "
            f"tokens/q={returned / n:7.0f} ({seconds:.1f}s)",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------------------------------------------- report


def machine() -> str:
    cores = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cores} cores, {mem:.0f} GiB, no GPU ({platform.processor() or platform.machine()}), shared with other jobs"
    )


def report(command: str, speed: list[dict], squad: list[dict], embed_seconds: float, odd: list[dict]) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Chunking benchmark",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}; timings are noisy, ratios come from one run.",
        f"- Load average (1, 5, 15 min) when the report was written: {load}",
        f"- Command: `{command}`",
        "",
    ]
    if speed:
        mb = speed[0]["corpus_megabytes"]
        lines += [
            f"## Throughput on the FastAPI docs ({mb:.2f} MB of Markdown, 155 files)",
            "",
            "Characters: chunk_size 1000, overlap 200. Tokens: all-MiniLM-L6-v2 tokenizer, chunk_size 256, overlap 32.",
            "MB/s from the process's CPU time (the machine is shared, wall time is mostly the neighbours' load),",
            "best of 3 passes for character splitters, one pass otherwise. LangChain's recursive splitter is timed",
            "twice: producing Documents with `add_start_index=True` (the same output as ours: chunks with offsets),",
            "and `split_text` (strings only). The semantic row embeds every sentence group with minilm on the CPU,",
            "without a cache, so it runs on the first files only; its MB/s is over those files.",
            "",
            "| unit | splitter | MB/s | × LangChain recursive (with start_index) | × LangChain split_text | chunks "
            "| mean size | max size |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in speed:
            vs_strings = f"{r['vs_langchain_strings']:.3g}" if r["vs_langchain_strings"] else ""
            lines.append(
                f"| {r['unit']} | {r['splitter']} | {r['mb_s']:.3g} | {r['vs_langchain']:.3g} | {vs_strings} | "
                f"{r['chunks']} | {r['mean_size']:.0f} | {r['max_size']} |"
            )
        lines.append("")
    if squad:
        n_art, n_q = squad[0]["articles"], squad[0]["questions"]
        lines += [
            f"## BM25 retrieval on long documents (SQuAD v1.1 dev: {n_art} articles, each joined, {n_q:,} questions)",
            "",
            "All chunks of all articles in one bm25s index (English stopwords, Snowball stemmer), top 5 per question.",
            "`answer in top-k`: share of questions whose gold answer span lies inside one of the top-k chunks.",
            "`tokens/question`: minilm tokens in the 5 chunks returned (the prompt cost).",
            f"Semantic chunking embedded sentence groups with minilm ({embed_seconds:.0f}s of embedding in this run).",
            "",
            "| splitter | setting | chunks | mean tokens | max tokens | answer in top-1 | answer in top-5 "
            "| tokens/question |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in squad:
            lines.append(
                f"| {r['splitter']} | {r['setting']} | {r['chunks']} | {r['mean_tokens']:.0f} | {r['max_tokens']} | "
                f"{r['answer_in_top1']:.3f} | {r['answer_in_top5']:.3f} | {r['tokens_per_question']:.0f} |"
            )
        lines.append("")
    if odd:
        lines += chunking_pathological.report_lines(odd)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown tables here")
    parser.add_argument("--parts", default="throughput,retrieval", help="any of throughput,retrieval,pathological")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--semantic-files", type=int, default=10, help="FastAPI files for the semantic row")
    parser.add_argument("--no-semantic", action="store_true", help="leave semantic chunking out of part 2")
    parser.add_argument("--max-articles", type=int, default=None, help="SQuAD articles to use (default: all 48)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    speed: list[dict] = []
    squad: list[dict] = []
    embed_seconds = 0.0
    if parts & {"throughput", "retrieval"}:
        minilm = TokenLength("minilm")
        embedder = Embedder("minilm", cache=EmbeddingCache(lorag_home() / "embeddings.sqlite"))
        original = embedder.embed_documents

        def timed_embed(texts: list[str]) -> np.ndarray:
            nonlocal embed_seconds
            t0 = time.perf_counter()
            out = original(texts)
            embed_seconds += time.perf_counter() - t0
            return out

        embedder.embed_documents = timed_embed  # type: ignore[method-assign]
        if "throughput" in parts:  # a cold embedder: the semantic row's time includes embedding
            speed = throughput(args.data, minilm, Embedder("minilm"), args.repeats, args.semantic_files)
        if "retrieval" in parts:
            squad = retrieval(args.data, minilm, embedder, args.max_articles, not args.no_semantic)
    odd = chunking_pathological.run() if "pathological" in parts else []
    command = "python benchmarks/chunking.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in vars(args).items()
        if v not in (None, False)
    )
    text = report(command, speed, squad, embed_seconds, odd)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

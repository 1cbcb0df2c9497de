"""How well the RAG relevance gate separates answerable from off-topic questions on the bundled documents.

Prints, per question, the best passage's dense (cosine) score and its source; the gap between the two groups is where
``lorag.rag.pipeline.DEFAULT_MIN_RELEVANCE`` sits.

    python benchmarks/rag_relevance_gate.py [--docs examples/fastapi-docs] [--embedder minilm]
"""

from __future__ import annotations

import argparse
import tempfile

from lorag.rag.index import DocumentIndex
from lorag.rag.pipeline import DEFAULT_MIN_RELEVANCE

ON_TOPIC = {
    "How do I allow cross-origin requests from my frontend?": "tutorial/cors.md",
    "How do I run code after returning a response?": "tutorial/background-tasks.md",
    "How do I declare a path parameter?": "tutorial/path-params.md",
    "How do I raise an HTTP error with a 404 status?": "tutorial/handling-errors.md",
    "How do I serve static files?": "tutorial/static-files.md",
    "How do I test my FastAPI app?": "tutorial/testing.md",
    "What is HTTPS and why do I need certificates?": "deployment/https.md",
    "Should I use async def or def for my path operations?": "async.md",
    "How do I declare query parameters with default values?": "tutorial/query-params.md",
    "How do I send a JSON body in a request?": "tutorial/body.md",
}
OFF_TOPIC = [
    "Who won the 2018 football world cup?",
    "What is the boiling point of water on Mars?",
    "How do I bake sourdough bread?",
    "What is the capital of Australia?",
    "Recommend a good science fiction novel.",
    "How many legs does a spider have?",
    "What is the tallest mountain in Europe?",
    "How do I change the oil in my car?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="examples/fastapi-docs")
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = DocumentIndex(tmp, embedder=args.embedder, show_progress=False)
        index.sync(args.docs)
        rows = []
        for group, questions in (("on-topic", list(ON_TOPIC)), ("off-topic", OFF_TOPIC)):
            for q in questions:
                hits = index.search(q, args.k)
                best = max(h.component_scores.get("dense") or float("-inf") for h in hits)
                expected = ON_TOPIC.get(q, "")
                rows.append((group, best, hits[0].metadata["source"], expected, q))
    print("| group | best dense score | top source | expected | question |\n|---|---|---|---|---|")
    for group, best, top, expected, q in rows:
        print(f"| {group} | {best:.3f} | {top} | {expected or '-'} | {q} |")
    on = [r[1] for r in rows if r[0] == "on-topic"]
    off = [r[1] for r in rows if r[0] == "off-topic"]
    hits_at_1 = sum(r[2] == r[3] for r in rows if r[0] == "on-topic")
    print(
        f"\non-topic min {min(on):.3f}, off-topic max {max(off):.3f}, gate {DEFAULT_MIN_RELEVANCE}: "
        f"{sum(s >= DEFAULT_MIN_RELEVANCE for s in on)}/{len(on)} answered, "
        f"{sum(s < DEFAULT_MIN_RELEVANCE for s in off)}/{len(off)} abstained; "
        f"right file first for {hits_at_1}/{len(on)}"
    )


if __name__ == "__main__":
    main()

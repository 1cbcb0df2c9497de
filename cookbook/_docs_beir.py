"""A tiny BEIR-format dataset made from the bundled FastAPI docs, for the retrieval recipes' smoke sizes.

Corpus: every headed section of ``examples/fastapi-docs`` (id ``file.md#anchor``, title = heading, text = body).
Queries: questions written by hand, each judged relevant to the sections that answer it. It is written to disk as
``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` so that ``lorag.evaluation.load_beir`` reads it exactly
as it reads SciFact.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from _common import DOCS

HEADING = re.compile(r"^(#{1,4}) (.+?)(?: \{ #([\w-]+) \})?\s*$")

#: question -> the sections (``file#anchor``) that answer it.
QUESTIONS: dict[str, list[str]] = {
    "How do I allow cross-origin requests from my frontend?": ["tutorial/cors.md#use-corsmiddleware"],
    "What is a CORS preflight request?": ["tutorial/cors.md#cors-preflight-requests"],
    "How do I run code after returning a response?": [
        "tutorial/background-tasks.md#background-tasks",
        "tutorial/background-tasks.md#add-the-background-task",
    ],
    "How do I restrict a path parameter to a fixed set of values?": [
        "tutorial/path-params.md#predefined-values",
        "tutorial/path-params.md#create-an-enum-class",
    ],
    "How do I declare a path parameter that contains a file path?": [
        "tutorial/path-params.md#path-parameters-containing-paths",
        "tutorial/path-params.md#path-convertor",
    ],
    "Why does the order of path operations matter?": ["tutorial/path-params.md#order-matters"],
    "How do I raise an HTTP error with a 404 status?": [
        "tutorial/handling-errors.md#raise-an-httpexception-in-your-code",
        "tutorial/handling-errors.md#use-httpexception",
    ],
    "How do I add custom headers to an error response?": ["tutorial/handling-errors.md#add-custom-headers"],
    "How do I serve static files?": ["tutorial/static-files.md#use-staticfiles"],
    "How do I test my FastAPI app?": ["tutorial/testing.md#using-testclient"],
    "How are HTTPS certificates renewed?": ["deployment/https.md#certificate-renewal"],
    "What does the SNI extension of TLS do?": ["deployment/https.md#tls-with-sni-extension"],
    "Should I use async def or def for my path operations?": ["async.md#in-a-hurry"],
    "How do I give a query parameter a default value?": ["tutorial/query-params.md#defaults"],
    "How do I make a query parameter required?": ["tutorial/query-params.md#required-query-parameters"],
    "How do I declare a request body with a Pydantic model?": [
        "tutorial/body.md#create-your-data-model",
        "tutorial/body.md#declare-it-as-a-parameter",
    ],
}


def sections(docs: Path = DOCS) -> dict[str, dict[str, str]]:
    """``{"file.md#anchor": {"title", "text"}}`` for every heading outside code fences with a non-empty body."""
    corpus: dict[str, dict[str, str]] = {}
    for path in sorted(docs.rglob("*.md")):
        if path.name == "SOURCE.md":
            continue
        name = path.relative_to(docs).as_posix()
        parts: list[tuple[str, str, list[str]]] = []  # (anchor, heading, body lines)
        fenced = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            match = None if fenced else HEADING.match(line)
            if match and match.group(3):
                parts.append((match.group(3), match.group(2), []))
            elif parts:
                parts[-1][2].append(line)
        for anchor, title, body in parts:
            text = "\n".join(body).strip()
            if len(text.split()) >= 5:
                corpus[f"{name}#{anchor}"] = {"title": title, "text": text}
    return corpus


def write_docs_beir(directory: Path) -> Path:
    """Write the bundled-docs dataset in BEIR format under ``directory`` and return it."""
    corpus = sections()
    missing = sorted({s for rel in QUESTIONS.values() for s in rel} - set(corpus))
    if missing:
        raise ValueError(f"judged sections not in the corpus: {missing}")
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    with (directory / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, doc in corpus.items():
            fh.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with (directory / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for i, question in enumerate(QUESTIONS):
            fh.write(json.dumps({"_id": f"q{i}", "text": question}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"q{i}\t{doc_id}\t1" for i, rel in enumerate(QUESTIONS.values()) for doc_id in rel]
    (directory / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory

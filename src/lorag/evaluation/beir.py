"""Load a BEIR-format dataset: ``corpus.jsonl`` (or ``.jsonl.gz``), ``queries.jsonl`` and ``qrels/<split>.tsv``.

Qrels files from the BEIR release use CRLF line endings; both CRLF and LF are read, with or without the
``query-id corpus-id score`` header.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class BeirDataset:
    """Corpus ``{doc_id: {"title", "text"}}``, queries ``{query_id: text}`` (only those judged in ``qrels``) and
    qrels ``{query_id: {doc_id: relevance}}``."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def document_text(self, doc_id: str) -> str:
        """BEIR's usual document text: title and body joined by a space."""
        doc = self.corpus[doc_id]
        return (doc.get("title", "") + " " + doc.get("text", "")).strip()


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _jsonl(path: Path) -> Iterator[dict]:
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno} is not valid JSON: {err}") from err


def _find(directory: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory} has none of {list(names)}: is it a BEIR dataset directory?")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a qrels TSV (CRLF or LF line endings, optional header)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open("r", encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
            try:
                score = int(parts[2])
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: score {parts[2]!r} is not an integer") from err
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR dataset directory for one qrels split."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR dataset directory {root} does not exist")
    corpus_path = _find(root, ("corpus.jsonl", "corpus.jsonl.gz"))
    queries_path = _find(root, ("queries.jsonl", "queries.jsonl.gz"))
    qrels_dir = root / "qrels"
    qrels_path = qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        found = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
        raise FileNotFoundError(f"no qrels for split {split!r} at {qrels_path}; splits there: {found}")
    corpus = {str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""} for d in _jsonl(corpus_path)}
    qrels = read_qrels(qrels_path)
    queries = {str(q["_id"]): q["text"] for q in _jsonl(queries_path) if str(q["_id"]) in qrels}
    qrels = {qid: rels for qid, rels in qrels.items() if qid in queries}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)

"""Training data for embedding distillation: unlabeled texts (the default) or (query, positive) pairs.

Accepted files: ``.txt`` (one text per line), JSONL (``.jsonl`` / ``.jsonl.gz``) whose records carry ``text``
(a BEIR corpus file: ``title`` is prepended, as lorag's SciFact benchmarks build document texts), or JSONL pairs
with ``query`` and ``positive``.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from lorag.chunking.sentence_boundaries import sentence_spans

_FORMATS = "a .txt file (one text per line), or a .jsonl/.jsonl.gz file with a 'text' field (e.g. a BEIR corpus)"


def _open(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    with _open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not JSON ({err.msg}); expected {_FORMATS}") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number} is not a JSON object; expected {_FORMATS}")
            yield number, record


def _is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))


def read_texts(path: str | Path, *, limit: int | None = None) -> list[str]:
    """The texts of ``path`` (see the module docstring), in file order, at most ``limit``; empty texts skipped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unsupported format, a record without ``text``, or no text at all.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training data {str(p)!r} does not exist; give {_FORMATS}")
    texts: list[str] = []
    if _is_jsonl(p):
        for number, record in _records(p):
            if "text" not in record:
                raise ValueError(f"{p}: line {number} has no 'text' field (keys: {', '.join(record) or 'none'})")
            text = (str(record.get("title") or "") + " " + str(record["text"] or "")).strip()
            if text:
                texts.append(text)
            if limit is not None and len(texts) >= limit:
                break
    elif p.name.endswith((".txt", ".txt.gz")):
        with _open(p) as f:
            for line in f:
                if line.strip():
                    texts.append(line.rstrip("\n"))
                if limit is not None and len(texts) >= limit:
                    break
    else:
        raise ValueError(f"unsupported training data {p.name!r}; give {_FORMATS}")
    if not texts:
        raise ValueError(f"no texts in {p}: the distiller needs at least 2 non-empty texts")
    return texts


def read_pairs(path: str | Path, *, limit: int | None = None) -> list[tuple[str, str]]:
    """(query, positive) pairs from a JSONL file with ``query`` and ``positive`` fields."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pairs file {str(p)!r} does not exist")
    pairs: list[tuple[str, str]] = []
    for number, record in _records(p):
        if not {"query", "positive"} <= set(record):
            raise ValueError(f"{p}: line {number} needs 'query' and 'positive' fields (keys: {', '.join(record)})")
        pairs.append((str(record["query"]), str(record["positive"])))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise ValueError(f"no pairs in {p}")
    return pairs


def add_sentences(
    texts: Sequence[str], per_text: int, *, whole_texts: int | None = None, min_words: int = 4, seed: int = 0
) -> list[str]:
    """``texts`` (or their first ``whole_texts``) followed by up to ``per_text`` sentences drawn from each of them.

    Queries are short; a student distilled on whole documents alone learns their long inputs better than one-line
    questions. Sentences of the same corpus are short inputs from the texts the user already gave (no labels, no test
    queries). Sentences under ``min_words`` words (headings, fragments) are skipped.

    ``whole_texts`` keeps only that many texts whole while every text still gives its sentences: a 256-token
    document costs a training step four to five times what a sentence does, so in a fixed time more, cheaper
    sentences teach more than more documents (mpnet ``layers:6`` on SciFact, one epoch: 400 documents + 7 sentences
    of each of 2,000 kept 95.5% of the teacher's nDCG@10 in 15.5 min; 1,600 documents + 5 sentences of each, 94.6%
    in 16.6 min; see ``benchmarks/results/distill.md``).
    """
    if per_text < 0:
        raise ValueError(f"per_text must be >= 0, got {per_text}")
    if whole_texts is not None and whole_texts < 0:
        raise ValueError(f"whole_texts must be >= 0 or None (all), got {whole_texts}")
    rng = random.Random(seed)
    extra: list[str] = []
    for text in texts:
        sentences = [text[a:b] for a, b in sentence_spans(text)]
        sentences = [s for s in sentences if len(s.split()) >= min_words and s != text]
        extra.extend(rng.sample(sentences, min(per_text, len(sentences))))
    return [*texts[:whole_texts], *extra]

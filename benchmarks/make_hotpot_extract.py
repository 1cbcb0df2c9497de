"""Turn HotpotQA dev (distractor setting) into a documents folder + questions JSONL for ``benchmarks/rag_answers.py``.

Why: issue #15 compares lorag's answers with the LangChain tutorial RAG on a second, multi-hop set besides SQuAD.
Each question's ten paragraphs (its two gold paragraphs and eight retrieved distractors) become one ``.txt`` file per
Wikipedia title, all in one ``docs/`` folder shared by every question, so retrieval searches the whole extract.
``supporting`` lists the files of the gold paragraphs (the titles in ``supporting_facts``); ``answers`` is the one
gold answer. Yes/no questions are left out: "yes"/"no" scores on a coin flip and says nothing about finding and
quoting the answer in the documents. ``--unanswerable N`` asks N of the chosen questions without one of their gold
paragraphs (removed from ``docs/``; ``answers`` empty), as a multi-hop set for calibrating abstention.

Reads the official layout (``_id``, ``context`` as ``[[title, [sentences]], ...]``) or the Hugging Face one
(``context`` as ``{"title": [...], "sentences": [...]}``), as a JSON array or one record a line. Ids are the
official ``_id`` when present, else ``dev-NNNN``, the question's position in the source file. Deterministic: with
more eligible questions than ``--n``, ``--seed`` picks them; the output keeps source order.

    python benchmarks/make_hotpot_extract.py path/to/hotpot_dev_distractor_v1.json [--out benchmarks/data/hotpotqa_dev]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import string
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).parent / "data" / "hotpotqa_dev"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 80


def _paragraphs(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, paragraph text) of a record's context, in either layout."""
    ctx = record["context"]
    pairs = zip(ctx["title"], ctx["sentences"], strict=True) if isinstance(ctx, dict) else ((c[0], c[1]) for c in ctx)
    return [(title, "".join(sentences).strip()) for title, sentences in pairs]


def _supporting_titles(record: dict[str, Any]) -> list[str]:
    facts = record["supporting_facts"]
    titles = facts["title"] if isinstance(facts, dict) else [f[0] for f in facts]
    return sorted(set(titles))


def _safe_stem(title: str) -> str:
    """An ASCII file-name stem for a title: accents dropped, anything but letters, digits, '.', '_', '-' as '_'."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _UNSAFE.sub("_", ascii_title).strip("._-")[:_MAX_STEM].rstrip("._-")
    return stem or "untitled"


def _is_scorable(answer: str) -> bool:
    """SQuAD normalisation (lower case, no punctuation, no articles) leaves something to compare."""
    text = "".join(ch for ch in answer.lower() if ch not in string.punctuation)
    return bool(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _file_names(paragraphs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A file name per distinct (title, text); a short hash tells apart those whose safe names would collide."""
    by_stem: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in sorted(paragraphs):
        by_stem[_safe_stem(pair[0])].append(pair)
    names = {}
    for stem, pairs in by_stem.items():
        for title, text in pairs:
            digest = hashlib.sha1(f"{title}\n{text}".encode()).hexdigest()[:8]
            names[(title, text)] = f"{stem}.txt" if len(pairs) == 1 else f"{stem}-{digest}.txt"
    return names


def _records(source: Path) -> list[dict[str, Any]]:
    """A JSON array (the official file) or JSON lines (one record a line)."""
    text = source.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)  # type: ignore[no-any-return]
    return [json.loads(line) for line in text.splitlines() if line]


def make_extract(source: Path, out: Path, n: int = 150, seed: int = 0, unanswerable: int = 0) -> dict[str, int]:
    """Write ``out/docs/*.txt`` and ``out/questions.jsonl`` from ``source``; return the counts.

    With ``unanswerable``, that many of the chosen questions lose one of their gold paragraphs (drawn with
    ``seed``) from ``docs/`` and are asked with no answer; an answerable question whose gold paragraph went with
    them is left out."""
    records = _records(source)
    counts = {"source_questions": len(records), "yes_no_excluded": 0, "unusable_excluded": 0}
    eligible = []
    for index, record in enumerate(records):
        answer = record["answer"].strip()
        paragraph_titles = {title for title, _ in _paragraphs(record)}
        if answer.lower() in ("yes", "no"):
            counts["yes_no_excluded"] += 1
        elif not _is_scorable(answer) or not set(_supporting_titles(record)) <= paragraph_titles:
            counts["unusable_excluded"] += 1
        else:
            eligible.append(index)
    chosen = sorted(random.Random(seed).sample(eligible, n)) if len(eligible) > n else eligible

    if not 0 <= unanswerable <= len(chosen):
        raise SystemExit(
            f"{source}: --unanswerable {unanswerable} must be between 0 and the {len(chosen)} questions kept"
        )
    names = _file_names({pair for i in chosen for pair in _paragraphs(records[i])})
    rng = random.Random(seed + 1)
    asked_without = set(rng.sample(chosen, unanswerable)) if unanswerable else set()
    removed = set()
    for i in sorted(asked_without):
        file_of = {title: names[(title, text)] for title, text in _paragraphs(records[i])}
        removed.add(file_of[rng.choice(_supporting_titles(records[i]))])
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for stale in docs.glob("*.txt"):
        stale.unlink()
    for (title, text), name in names.items():
        if name not in removed:
            (docs / name).write_text(f"{title}\n\n{text}\n", encoding="utf-8")

    lines = []
    counts["lost_gold_excluded"] = 0
    for i in chosen:
        record = records[i]
        file_of = {title: names[(title, text)] for title, text in _paragraphs(record)}
        supporting = sorted({file_of[t] for t in _supporting_titles(record)})
        if i not in asked_without and removed.intersection(supporting):
            counts["lost_gold_excluded"] += 1
            continue
        answerable = i not in asked_without
        lines.append(
            {
                "id": record.get("_id") or record.get("id") or f"dev-{i:04d}",
                "question": record["question"].strip(),
                "answers": [record["answer"].strip()] if answerable else [],
                "supporting": supporting if answerable else [],
                "type": record.get("type"),
                "level": record.get("level"),
            }
        )
    (out / "questions.jsonl").write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
    )
    counts |= {
        "eligible": len(eligible),
        "questions": len(lines),
        "unanswerable": sum(not line["answers"] for line in lines),
        "bridge": sum(line["type"] == "bridge" for line in lines),
        "comparison": sum(line["type"] == "comparison" for line in lines),
        "documents": len(names) - len(removed),
        "documents_bytes": sum(p.stat().st_size for p in docs.glob("*.txt")),
    }
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="HotpotQA dev distractor JSON (official or Hugging Face layout)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--n", type=int, default=150, help="questions to keep (all eligible ones when fewer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--unanswerable", type=int, default=0, help="questions asked with one of their gold paragraphs removed"
    )
    args = parser.parse_args()
    counts = make_extract(args.source, args.out, args.n, args.seed, args.unanswerable)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()

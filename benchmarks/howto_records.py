"""How-to questions over documentation folders as training records for the grounded-answer adapter.

Each set is a folder with ``docs/`` and a ``questions.jsonl`` in ``lorag eval-rag``'s format
(``benchmarks/data/howto/<name>``, each with its ``SOURCE.md``). The passages are the ones ``lorag ask`` would give
the model: the folder indexed by lorag's own ``DocumentIndex`` (Markdown chunked by headers, so every block is
labelled "page > section" as a user's docs are; SQuAD's paragraphs carry a bare file name) and the question's own
hybrid search, in lorag's exact RAG prompt (``lorag.rag.prompt.build_rag_prompt``).

- **answerable**: the top k hits when one of them, from a supporting page, holds a gold string; otherwise the best
  ranked chunk of a supporting page that holds one takes the place of a hit, at a random position. The target is
  the gold string and its citation (``"prompt=True [2]"``).
- **unanswerable twin** (a share of the answerable questions): the same question with every hit from a supporting
  page, or holding a gold string, swapped for the next hit that is neither; the target is ``NO_ANSWER``. Other
  chunks of the answering page stay out too: they often describe what the question asks without the gold string,
  and a twin over them would teach the model to decline a question its context answers.
- **the set's unanswerable questions**: the top k hits; the target is ``NO_ANSWER``.

Questions whose gold string no chunk of a supporting page holds (an answer split across a chunk boundary) are
skipped and counted. Usage::

    PYTHONPATH=src python benchmarks/howto_records.py benchmarks/data/howto/typer benchmarks/data/howto/click \
        --out /tmp/howto-train.jsonl --work /tmp/howto-index
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SEED = 16
TRAIN_K = (2, 2, 3)  # passages per prompt: mostly the default k=2, some 3, as benchmarks/squad_rag.py
CANDIDATES = 40  # hits searched for a gold chunk and for clean replacements


def holds(text: str, answers: list[str]) -> bool:
    """Whether a passage holds a gold string (case-insensitive, as the question sets were checked)."""
    lowered = text.lower()
    return any(a.lower() in lowered for a in answers)


def set_records(folder: Path, work: Path, twin_share: float, rng: random.Random, counts: Counter[str]) -> list[Any]:
    """The records of one question set (its docs indexed under ``work``)."""
    from transformers import AutoTokenizer

    from lorag.evaluation import load_questions
    from lorag.models import resolve_model
    from lorag.rag.index import DocumentIndex
    from lorag.rag.pipeline import blocks_from_hits, chat_token_counter
    from lorag.rag.prompt import NO_ANSWER, build_rag_prompt

    questions = load_questions(folder / "questions.jsonl", folder / "docs")
    index = DocumentIndex(work / folder.name, show_progress=False)
    index.sync(folder / "docs", exclude=[])
    count = chat_token_counter(AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct")))

    def record(question: str, hits: list[Any], target: str) -> dict[str, Any]:
        prompt = build_rag_prompt(
            question, blocks_from_hits(hits), count_tokens=count, context_window=8192, max_new_tokens=160
        )
        return {"messages": [*prompt.messages, {"role": "assistant", "content": target}]}

    records = []
    for q in questions:
        k = rng.choice(TRAIN_K)
        top = index.search(q.question, k)
        if not q.answers:
            records.append(record(q.question, top, NO_ANSWER))
            counts["unanswerable"] += 1
            continue
        pool = [h for h in index.search(q.question, CANDIDATES) if h.id not in {t.id for t in top}]

        def gold(hit: Any, q: Any = q) -> bool:
            return hit.metadata.get("source") in q.supporting and holds(hit.text, q.answers)

        def answering(hit: Any, q: Any = q) -> bool:  # what a twin leaves out: the pages that answer, any gold string
            return hit.metadata.get("source") in q.supporting or holds(hit.text, q.answers)

        chosen = list(top)
        if not any(gold(h) for h in chosen):
            found = next((h for h in pool if gold(h)), None)
            if found is None:
                counts["skipped (no chunk of a supporting page holds a gold string)"] += 1
                continue
            chosen.pop()  # the lowest ranked hit makes room
            chosen.insert(rng.randrange(k), found)
            counts["gold put in"] += 1
        position = next(i for i, h in enumerate(chosen) if gold(h))
        answer = next(a for a in q.answers if holds(chosen[position].text, [a]))
        records.append(record(q.question, chosen, f"{answer.strip()} [{position + 1}]"))
        counts["answerable"] += 1
        if rng.random() < twin_share:
            clean = iter(h for h in pool if not answering(h))
            twin = [h if not answering(h) else next(clean, None) for h in chosen]
            if all(h is not None for h in twin):
                records.append(record(q.question, twin, NO_ANSWER))
                counts["twins"] += 1
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help="folders with docs/ and questions.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="JSONL of chat records for lorag train-adapter")
    parser.add_argument("--work", type=Path, required=True, help="where the sets' indexes are kept")
    parser.add_argument("--twin-share", type=float, default=0.5, help="answerable questions with a twin")
    args = parser.parse_args(argv)

    rng, counts, records = random.Random(SEED), Counter[str](), []
    for folder in args.sets:
        records += set_records(folder, args.work, args.twin_share, rng, counts)
    rng.shuffle(records)
    with args.out.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(json.dumps({"records": len(records), **counts}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SQuAD v1.1 as RAG data: a by-article split into train / dev / test, each turned into what lorag needs.

- **test** and **dev**: a documents folder (one ``.txt`` file per paragraph, named after its article) and a
  ``questions.jsonl`` for ``lorag eval-rag``. The questions must find their own paragraph among every paragraph of
  their articles. Unanswerable questions are made by removing a paragraph from the folder and asking one of its
  questions.
- **train**: chat records in lorag's exact RAG prompt (``lorag.rag.prompt.build_rag_prompt``) for
  ``lorag train-adapter``: the gold paragraph among BM25-retrieved distractors from the same training articles, at
  a random position, the target the first gold answer followed by its citation (``"Westwood One [2]"``); and for a
  share of the questions an unanswerable twin (the gold paragraph swapped for another distractor) whose target is
  ``NO_ANSWER``.

No article is in two splits, so nothing evaluated was trained on or used to choose a default. The split and every
sample are seeded. Usage::

    PYTHONPATH=src python benchmarks/squad_rag.py --data ../shared/data/squad-v1.1 --out /tmp/squad-rag
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 15
SPLIT = {"test": 12, "dev": 6}  # articles; the other 30 train
TRAIN_K = (2, 2, 3)  # passages per training prompt: mostly the default k=2, some 3


@dataclass(frozen=True)
class Paragraph:
    article: str
    index: int
    text: str
    qas: tuple[tuple[str, str, tuple[str, ...]], ...]  # (id, question, answers)

    @property
    def file(self) -> str:
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', self.article).strip('_')}-{self.index:02d}.txt"


def load_articles(data_dir: Path) -> dict[str, list[Paragraph]]:
    with zipfile.ZipFile(data_dir / "dev-v1.1.json.zip") as zf:
        raw = json.loads(zf.read("dev-v1.1.json"))
    articles: dict[str, list[Paragraph]] = {}
    for article in raw["data"]:
        articles[article["title"]] = [
            Paragraph(
                article["title"],
                i,
                para["context"],
                tuple((qa["id"], qa["question"], tuple(a["text"] for a in qa["answers"])) for qa in para["qas"]),
            )
            for i, para in enumerate(article["paragraphs"])
        ]
    return articles


def split_articles(titles: list[str], seed: int = SEED) -> dict[str, list[str]]:
    order = sorted(titles)
    random.Random(seed).shuffle(order)
    test, dev = SPLIT["test"], SPLIT["dev"]
    return {"test": order[:test], "dev": order[test : test + dev], "train": order[test + dev :]}


def write_eval_set(paragraphs: list[Paragraph], out: Path, answerable: int, unanswerable: int, seed: int) -> None:
    """``out/docs/`` (every paragraph but the removed ones) and ``out/questions.jsonl``."""
    rng = random.Random(seed)
    removed = set(rng.sample(range(len(paragraphs)), unanswerable))
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    questions: list[dict[str, Any]] = []
    pool = []
    for i, para in enumerate(paragraphs):
        if i in removed:
            qid, question, _ = rng.choice(para.qas)
            questions.append({"id": qid, "question": question, "answers": [], "supporting": []})
        else:
            (docs / para.file).write_text(para.text + "\n", encoding="utf-8")
            pool.extend((qid, q, a, para.file) for qid, q, a in para.qas)
    for qid, question, answers, file in rng.sample(pool, answerable):
        questions.append({"id": qid, "question": question, "answers": list(answers), "supporting": [file]})
    rng.shuffle(questions)
    with (out / "questions.jsonl").open("w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")


def mentions_answer(text: str, answers: tuple[str, ...]) -> bool:
    """Whether a passage contains one of the gold answers (SQuAD-normalised), so it cannot stand in for "no answer"."""
    from lorag.evaluation.answers import normalize_answer

    passage = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(a)} " in passage for a in answers if normalize_answer(a))


def training_records(
    paragraphs: list[Paragraph], n: int, twin_share: float, seed: int, tokenizer: Any
) -> list[dict[str, Any]]:
    """Chat records in the RAG prompt format: n answerable questions, and for a share of them an unanswerable twin.

    An answerable record puts the gold paragraph among BM25 distractors at a random position. Its twin is the same
    question over the same distractors with the gold paragraph swapped for the next BM25 hit, so the two differ only
    in whether the answer is there: the adapter learns to decline by reading, not by the kind of question. Distractors
    that contain a gold answer are skipped, so no "no answer" target is wrong.
    """
    from lorag.rag.pipeline import chat_token_counter
    from lorag.rag.prompt import NO_ANSWER, ContextBlock, build_rag_prompt
    from lorag.retrieval import BM25Index

    rng = random.Random(seed)
    bm25 = BM25Index.from_texts([p.text for p in paragraphs], ids=[str(i) for i in range(len(paragraphs))])
    count = chat_token_counter(tokenizer)

    def record(question: str, chosen: list[int], target: str) -> dict[str, Any]:
        blocks = [ContextBlock(paragraphs[i].text, paragraphs[i].file) for i in chosen]
        prompt = build_rag_prompt(question, blocks, count_tokens=count, context_window=8192, max_new_tokens=160)
        return {"messages": [*prompt.messages, {"role": "assistant", "content": target}]}

    items = [(i, qa) for i, p in enumerate(paragraphs) for qa in p.qas]
    records = []
    for gold, (_, question, answers) in rng.sample(items, n):
        k = rng.choice(TRAIN_K)
        hits = [int(h.id) for h in bm25.search(question, k=k + 4) if int(h.id) != gold]
        clean = [i for i in hits if not mentions_answer(paragraphs[i].text, answers)]
        if len(clean) < k:
            continue
        distractors = clean[: k - 1]
        position = rng.randrange(k)
        chosen = [*distractors[:position], gold, *distractors[position:]]
        records.append(record(question, chosen, f"{answers[0].strip()} [{position + 1}]"))
        if rng.random() < twin_share:
            records.append(
                record(question, [*distractors[:position], clean[k - 1], *distractors[position:]], NO_ANSWER)
            )
    rng.shuffle(records)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with dev-v1.1.json.zip")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-answerable", type=int, default=300)
    parser.add_argument("--test-unanswerable", type=int, default=50)
    parser.add_argument("--dev-answerable", type=int, default=100)
    parser.add_argument("--dev-unanswerable", type=int, default=20)
    parser.add_argument("--train-questions", type=int, default=0, help="also write train.jsonl from this many")
    parser.add_argument("--train-twin-share", type=float, default=0.5, help="questions that get an unanswerable twin")
    args = parser.parse_args(argv)

    articles = load_articles(args.data)
    split = split_articles(list(articles))
    paragraphs = {name: [p for title in titles for p in articles[title]] for name, titles in split.items()}
    write_eval_set(paragraphs["test"], args.out / "test", args.test_answerable, args.test_unanswerable, SEED)
    write_eval_set(paragraphs["dev"], args.out / "dev", args.dev_answerable, args.dev_unanswerable, SEED + 1)
    (args.out / "split.json").write_text(json.dumps(split, indent=1), encoding="utf-8")
    if args.train_questions:
        from transformers import AutoTokenizer

        from lorag.models import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
        records = training_records(
            paragraphs["train"], args.train_questions, args.train_twin_share, SEED + 2, tokenizer
        )
        with (args.out / "train.jsonl").open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(json.dumps({k: len(v) for k, v in paragraphs.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""HotpotQA dev questions beyond the benchmark's 100: the multi-hop *dev* data of ``rag_defaults.md``.

``rag_answers.py`` holds out the first 100 questions of HotpotQA's dev distractor file (its test set, 88 once yes/no
questions are left out). Tuning on multi-hop questions needs others: GitHub ``megagonlabs/RPT`` at commit
``cf2bc1b1b4edd0318b84179e732ec476c4e20a6e`` ships 1,100 questions of the same dev distractor split in the Hugging
Face layout (``data/hotpotqa/{train,test,dev}.jsonl``, despite the names all dev questions; HotpotQA is CC BY-SA 4.0,
the repository BSD-3-Clause). This script joins the three files, drops every question of the benchmark's test set
(its source's 100, yes/no ones too, by question text) and repeats, and writes the rest ordered by HotpotQA id as one
JSON array: the ``--hotpot`` input of ``answerability_gate.py`` (which splits it into even and odd halves) and, one
half at a time, of ``make_hotpot_extract.py``::

    git -C RPT show cf2bc1b:data/hotpotqa/train.jsonl > rpt-train.jsonl   # and test.jsonl, dev.jsonl
    python benchmarks/hotpot_dev_more.py rpt-train.jsonl rpt-test.jsonl rpt-dev.jsonl \\
        --test hotpot_dev_distractor_v1.json --out /tmp/hp/hotpot_dev_more.json

1,086 questions remain (14 of RPT's are among the benchmark's first 100). The multi-hop dev set of
``rag_defaults.md`` from section 16 on (*HotpotQA check*) is the odd half's first 200 questions::

    python benchmarks/hotpot_dev_more.py rpt-*.jsonl --test hotpot_dev_distractor_v1.json --half odd --out odd.json
    python benchmarks/make_hotpot_extract.py odd.json --out /tmp/hp/check --n 543 --unanswerable 130
    mkdir -p /tmp/hp/check-sub && head -200 /tmp/hp/check/questions.jsonl > /tmp/hp/check-sub/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def dev_questions(sources: list[Path], test_questions: Path) -> list[dict]:
    """The records of ``sources`` (JSONL) whose question is not in ``test_questions`` (the benchmark's source file,
    yes/no questions included), once each, by id."""
    held_out = {record["question"].strip() for record in json.loads(test_questions.read_text(encoding="utf-8"))}
    records: dict[str, dict] = {}
    for source in sources:
        for line in source.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["question"].strip() not in held_out:
                records.setdefault(record["id"], record)
    return [records[key] for key in sorted(records)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, nargs="+", help="RPT's data/hotpotqa/*.jsonl")
    parser.add_argument(
        "--test", type=Path, required=True, help="the benchmark's source: the first 100 dev questions (JSON)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--half", choices=("even", "odd"), help="write one half only (answerability_gate.py's)")
    args = parser.parse_args()
    records = dev_questions(args.sources, args.test)
    if args.half:
        records = records[args.half == "odd" :: 2]
    args.out.write_text(json.dumps(records), encoding="utf-8")
    print(json.dumps({"questions": len(records), "out": str(args.out)}))


if __name__ == "__main__":
    main()

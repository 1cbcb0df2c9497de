"""Small data helpers shared by the QLoRA tests."""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def echo_task(n: int, seed: int = 0) -> list[dict[str, object]]:
    """A learnable task: the answer is a fixed word chosen by a keyword in the question."""
    mapping = {"fox": "dog", "paris": "france", "code": "hello", "text": "link"}
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for _ in range(n):
        key = rng.choice(sorted(mapping))
        rows.append(
            {"messages": [{"role": "user", "content": f"word {key}"}, {"role": "assistant", "content": mapping[key]}]}
        )
    return rows

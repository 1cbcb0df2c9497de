"""The tiny corpus, ids and metadata the retrieval tests share, and the whitespace tokenizer of the parity tests."""

from __future__ import annotations

from typing import Any

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Foxes are small omnivorous mammals of the dog family.",
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany and its largest city.",
    "Python is a programming language that lets you work quickly.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Dogs were domesticated from wolves thousands of years ago.",
    "Rust is a programming language focused on safety and speed.",
    "The Louvre in Paris is the world's most visited museum.",
    "Wolves and foxes both belong to the family Canidae.",
]
IDS = [f"doc-{i}" for i in range(len(CORPUS))]
METADATAS: list[dict[str, Any]] = [
    {"topic": "animals", "year": 2001},
    {"topic": "animals", "year": 2002},
    {"topic": "geography", "year": 2003},
    {"topic": "geography", "year": 2004},
    {"topic": "computing", "year": 2005},
    {"topic": "geography", "year": 2006},
    {"topic": "animals", "year": 2007},
    {"topic": "computing", "year": 2008},
    {"topic": "geography", "year": 2009},
    {"topic": "animals", "year": 2010},
]


class WhitespaceTokenizer:
    """Splits on whitespace: the tokens rank-bm25 is given in the parity tests."""

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def settings(self) -> dict[str, Any]:
        return {"type": "whitespace"}

"""Sentence boundaries in English and Spanish: abbreviations, initials, decimals, inverted marks."""

from __future__ import annotations

import itertools

import pytest

from lorag.chunking import SentenceSplitter, sentence_spans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith paid $3.50 for it. Then he left! Did he? Yes.",
            ["Dr. Smith paid $3.50 for it.", "Then he left!", "Did he?", "Yes."],
        ),
        (
            "See e.g. the U.S. rules. J. R. R. Tolkien wrote it.",
            ["See e.g. the U.S. rules.", "J. R. R. Tolkien wrote it."],
        ),
        (
            "Pi is approx. 3.14159 today. The answer is no. Then go.",
            ["Pi is approx. 3.14159 today.", "The answer is no.", "Then go."],
        ),
        (
            "Apples, pears, etc. are fruit. Buy fruit, etc. Then eat.",
            ["Apples, pears, etc. are fruit.", "Buy fruit, etc.", "Then eat."],
        ),
        (
            "El Sr. García llegó a las 3.30 p.m. y habló con la Sra. López. ¿Qué pasó? ¡Nada! Ver pág. 4.",
            ["El Sr. García llegó a las 3.30 p.m. y habló con la Sra. López.", "¿Qué pasó?", "¡Nada!", "Ver pág. 4."],
        ),
        (
            "La Dra. Pérez vive en EE.UU. desde 2010. Trabaja mucho.",
            ["La Dra. Pérez vive en EE.UU. desde 2010.", "Trabaja mucho."],
        ),
        ("A heading without a stop\n\nNext paragraph.", ["A heading without a stop", "Next paragraph."]),
        ('He said "Stop." She stopped.', ['He said "Stop."', "She stopped."]),
    ],
)
def test_sentence_spans(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in sentence_spans(text)] == expected


def test_overlap_counts_whole_sentences() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    chunks = SentenceSplitter(100, 60, overlap_sentences=1).split(text)
    for prev, nxt in itertools.pairwise(chunks):
        repeated = text[nxt.start : prev.end]
        assert repeated.count(".") == 1, repeated  # exactly one whole sentence repeated
    assert all(c.text.endswith(".") for c in chunks)

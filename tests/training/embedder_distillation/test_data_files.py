"""Training texts come from .txt, JSONL with 'text', or BEIR corpus files (title + text, gzipped or not)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lorag.training.distill_data import read_pairs, read_texts


def test_txt_one_text_per_line_skipping_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("first text\n\nsecond text\n")
    assert read_texts(tmp_path / "t.txt") == ["first text", "second text"]


def test_jsonl_text_field_and_limit(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"text {i}", "id": i}) for i in range(5)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    assert read_texts(tmp_path / "t.jsonl", limit=3) == ["text 0", "text 1", "text 2"]


def test_beir_corpus_gz_joins_title_and_text(tmp_path: Path) -> None:
    records = [{"_id": "1", "title": "Title", "text": "Body."}, {"_id": "2", "title": "", "text": "Only body."}]
    with gzip.open(tmp_path / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in records) + "\n")
    assert read_texts(tmp_path / "corpus.jsonl.gz") == ["Title Body.", "Only body."]


def test_pairs(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(json.dumps({"query": "q1", "positive": "p1"}) + "\n")
    assert read_pairs(tmp_path / "p.jsonl") == [("q1", "p1")]


def test_add_sentences_appends_sentences_of_each_text() -> None:
    from lorag.training.distill_data import add_sentences

    docs = [
        "Aspirin lowers the risk of stroke. It was tested in 2,000 adults over five years. Side effects were rare.",
        "Short heading",
    ]
    out = add_sentences(docs, 2, seed=1)
    assert out[:2] == docs
    extra = out[2:]
    assert len(extra) == 2 and all(s in docs[0] for s in extra)  # the heading has no sentence of 4+ words
    assert all(s.endswith(".") and len(s.split()) >= 4 for s in extra)
    assert add_sentences(docs, 0) == docs
    with pytest.raises(ValueError, match="per_text"):
        add_sentences(docs, -1)


def test_add_sentences_whole_texts_keeps_the_first_whole_and_sentences_of_all() -> None:
    from lorag.training.distill_data import add_sentences

    docs = [
        "Aspirin lowers the risk of stroke. It was tested in 2,000 adults over five years.",
        "Statins lower cholesterol in most patients. Muscle pain is the common side effect.",
    ]
    everything = add_sentences(docs, 2)
    out = add_sentences(docs, 2, whole_texts=1)
    assert out == [docs[0], *everything[2:]]  # the same sentences, drawn from both documents
    assert any(s in docs[1] for s in out[1:]) and docs[1] not in out
    assert add_sentences(docs, 2, whole_texts=0) == everything[2:]
    assert add_sentences(docs, 2, whole_texts=5) == everything
    with pytest.raises(ValueError, match="whole_texts"):
        add_sentences(docs, 2, whole_texts=-1)

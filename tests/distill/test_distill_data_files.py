"""Training texts come from .txt, JSONL with 'text', or BEIR corpus files (title + text, gzipped or not)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

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

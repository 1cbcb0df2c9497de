"""Markdown: header paths in metadata; code fences and tables stay whole unless alone too big (then flagged)."""

from __future__ import annotations

from lorag.chunking import MarkdownSplitter

CODE = "```python\n" + "".join(f"x{i} = {i}\n" for i in range(8)) + "```"
TABLE = "| name | value |\n|---|---|\n" + "".join(f"| k{i} | v{i} |\n" for i in range(5))
DOC = f"""# Guide {{ #guide }}

Intro paragraph that is long enough to matter here.

## Install

Some words before the code.

{CODE}

More words after the code.

### Options

{TABLE}
Closing words.

# Appendix

Last part.
"""


def test_header_paths() -> None:
    chunks = MarkdownSplitter(400).split(DOC)
    paths = [c.metadata["header_path"] for c in chunks]
    assert paths == ["Guide", "Guide > Install", "Guide > Install > Options", "Appendix"]


def test_code_and_tables_are_not_cut_when_they_fit() -> None:
    chunks = MarkdownSplitter(max(len(CODE), len(TABLE)) + 5).split(DOC)
    assert any(CODE in c.text for c in chunks)
    assert any(TABLE.strip() in c.text for c in chunks)
    assert not any("split_block" in c.metadata for c in chunks)
    for c in chunks:
        assert c.text.count("```") in (0, 2)


def test_a_block_over_the_maximum_is_cut_and_flagged() -> None:
    chunks = MarkdownSplitter(40).split(DOC)
    code_chunks = [c for c in chunks if c.metadata.get("split_block") == "code"]
    table_chunks = [c for c in chunks if c.metadata.get("split_block") == "table"]
    assert len(code_chunks) >= 2 and len(table_chunks) >= 2
    assert all(len(c) <= 40 for c in chunks)
    assert "".join(c.text for c in code_chunks).replace("\n", "") == CODE.replace("\n", "")


def test_no_fence_means_no_false_block() -> None:
    text = "# T\n\nA line with `inline code` and a | pipe.\n"
    chunks = MarkdownSplitter(200).split(text)
    assert len(chunks) == 1 and "split_block" not in chunks[0].metadata

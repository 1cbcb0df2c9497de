"""chunks_of_best_files: the question's search keeps the chunks of the k files it ranks first."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.rag.best_files import check_chunks_per_file, chunks_of_best_files


def _source(hit: str) -> str:
    return hit.split("#")[0]


def test_keeps_the_later_chunks_of_the_first_k_files_in_rank_order() -> None:
    ranked = ["a#1", "b#1", "a#2", "c#1", "b#2", "a#3"]
    assert chunks_of_best_files(ranked, 2, source=_source) == ["a#1", "b#1", "a#2", "b#2", "a#3"]
    assert chunks_of_best_files(ranked, 3, source=_source) == ranked
    assert chunks_of_best_files(ranked, 1, source=_source) == ["a#1", "a#2", "a#3"]


def test_one_chunk_per_file_folders_get_the_top_k() -> None:
    ranked = ["a#1", "b#1", "c#1", "d#1"]
    assert chunks_of_best_files(ranked, 2, source=_source) == ["a#1", "b#1"]
    assert chunks_of_best_files([], 2, source=_source) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_chunks_per_file_must_be_a_whole_number_from_one(bad: object) -> None:
    with pytest.raises(ValueError, match="chunks_per_file must be a whole number >= 1"):
        check_chunks_per_file(bad)  # type: ignore[arg-type]
    assert check_chunks_per_file(3) == 3


def test_the_cli_refuses_chunks_per_file_below_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ask", "anything?", "--docs", str(tmp_path), "--chunks-per-file", "0"])
    assert result.exit_code == 2 and "--chunks-per-file" in result.output

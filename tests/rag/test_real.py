"""`lorag ask` on the real packaged models over the bundled docs: a cited answer, and an honest "not in the docs"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.rag.prompt import NO_ANSWER

pytestmark = pytest.mark.real_model
DOCS = Path(__file__).resolve().parents[2] / "examples" / "fastapi-docs"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rag") / "index"
    result = CliRunner().invoke(app, ["index", "--docs", str(DOCS), "--index-dir", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _ask(index_dir: Path, question: str) -> dict:
    result = CliRunner().invoke(app, ["ask", "--index-dir", str(index_dir), "--max-tokens", "80", "--json", question])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_answers_from_the_right_file(index_dir: Path) -> None:
    payload = _ask(index_dir, "How do I allow cross-origin requests from my frontend?")
    assert not payload["abstained"]
    assert payload["sources"][0]["source"] == "tutorial/cors.md"
    answer = payload["answer"].lower()
    assert "origin" in answer or "cors" in answer, payload["answer"]


def test_says_when_the_docs_do_not_hold_the_answer(index_dir: Path) -> None:
    payload = _ask(index_dir, "Who won the 2018 football world cup?")
    assert payload["abstained"] and payload["answer"] == NO_ANSWER and payload["sources"] == []

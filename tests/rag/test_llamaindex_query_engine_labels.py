"""``create_query_engine`` labels passages the way a LlamaIndex user's reader and node parser describe them: file
names and header paths, never node ids (a model quotes its labels, so an id label ends up in the answer). The README's
LlamaIndex snippet, run with its real models, answers without node ids and lists file names as sources."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import MarkdownNodeParser, NodeParser

from llama_index.node_parser.lorag import LoragNodeParser
from llama_index.query_engine.lorag import source_label
from llama_index.retrievers.lorag import LoragBM25Retriever, create_query_engine

ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize(
    ("metadata", "label"),
    [
        ({"source": "guide.md", "section": "CORS", "file_name": "x.md"}, "guide.md > CORS"),
        (
            {"file_name": "cors.md", "file_path": "/docs/guide/cors.md", "header_path": "CORS > Origins"},
            "cors.md > CORS > Origins",
        ),
        ({"file_path": "/docs/guide/cors.md"}, "cors.md"),
        (
            {"url": "https://example.org/cors", "header_path": "/CORS/Origins/"},
            "https://example.org/cors > CORS > Origins",
        ),
        ({"file_name": "manual.pdf", "page_label": "3", "page": 3}, "manual.pdf (page 3)"),
        ({"header_path": "/"}, ""),
        ({}, ""),
    ],
)
def test_source_label(metadata: dict[str, Any], label: str) -> None:
    assert source_label(metadata) == label


@pytest.mark.parametrize(
    ("parser", "citations"),
    [
        (LoragNodeParser(method="markdown", chunk_size=400), ["[1] cors.md > CORS > Origins", "[2] cors.md > CORS"]),
        (MarkdownNodeParser(), ["[1] cors.md > CORS", "[2] cors.md"]),  # LlamaIndex's path names the parents only
    ],
)
def test_a_directory_reader_s_nodes_are_cited_by_file_and_section(
    docs: Path, parser: NodeParser, citations: list[str]
) -> None:
    prompts: list[str] = []

    class RecordingLLM(MockLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            prompts.append(prompt)
            return super().complete(prompt, formatted=formatted, **kwargs)

    documents = SimpleDirectoryReader(str(docs), recursive=True, required_exts=[".md"]).load_data()
    nodes = parser.get_nodes_from_documents(documents)
    retriever = LoragBM25Retriever.from_documents(nodes, similarity_top_k=2)
    response = create_query_engine(retriever, RecordingLLM(max_tokens=8)).query("Which origins are allowed for CORS?")

    cited = [n.node.metadata["citation"] for n in response.source_nodes]
    assert sorted(c[4:] for c in cited) == sorted(c[4:] for c in citations)  # labels; the rank order may differ
    assert all(f"{c}\n" in prompts[0] for c in cited)
    assert not UUID.search(prompts[0]), prompts[0]


@pytest.mark.real_model
def test_readme_snippet_answers_without_node_ids() -> None:
    from tests.test_readme import snippets

    code = snippets()["llamaindex-rag"] + (
        "\nimport re\n"
        "ids = [n.node_id for n in nodes]\n"
        "assert not [i for i in ids if i in str(response)], str(response)\n"
        "assert not re.search(r'[0-9a-f]{8}-[0-9a-f]{4}-', str(response)), str(response)\n"
        "names = [n.node.metadata['file_name'] for n in response.source_nodes]\n"
        "assert all(n.endswith('.md') and '/' not in n for n in names), names\n"
        "assert all(n.node.metadata['citation'].split(' ')[1] in names for n in response.source_nodes)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]

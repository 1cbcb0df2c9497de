"""Recipe 2: the same RAG as a LlamaIndex query engine: lorag node parser, hybrid retriever and the grounded LLM.

``create_query_engine`` answers through lorag's RAG composition, as ``lorag ask`` does (relevance and answerability
gates, a window-fitted cited prompt, the loop guard) and numbers the sources, so ``response.source_nodes`` are the
passages the answer can cite as ``[n]``. ``Settings.llm`` works too: ``LoragLLM`` is a regular LlamaIndex LLM.

    python cookbook/02_llamaindex_query_engine.py
    python cookbook/02_llamaindex_query_engine.py --size smoke
"""

from __future__ import annotations

from llama_index.core import SimpleDirectoryReader

from _common import DOCS, parser, write_results
from llama_index.llms.lorag import LoragLLM
from llama_index.node_parser.lorag import LoragNodeParser
from llama_index.retrievers.lorag import LoragHybridRetriever, create_query_engine
from lorag.embedding import Embedder

QUESTIONS = [
    "How do I declare a path parameter?",
    "How do I raise an HTTP error with a 404 status?",
]


def main() -> None:
    args = parser(__doc__.splitlines()[0], "02_llamaindex_query_engine").parse_args()
    smoke = args.size == "smoke"
    reader = SimpleDirectoryReader(str(DOCS), recursive=True, required_exts=[".md"])
    documents = [d for d in reader.load_data() if not smoke or d.metadata["file_name"] in SMOKE_FILES]
    nodes = LoragNodeParser(method="markdown", chunk_size=256, chunk_overlap=32, tokenizer="minilm")(documents)
    retriever = LoragHybridRetriever.from_documents(nodes, Embedder("minilm", show_progress=True), similarity_top_k=3)
    engine = create_query_engine(retriever, LoragLLM(quantization="none", max_tokens=24 if smoke else 120))
    answers = []
    for question in QUESTIONS[:1] if smoke else QUESTIONS:
        response = engine.query(question)
        sources = [n.node.metadata["file_name"] for n in response.source_nodes]
        print(f"\nQ: {question}\nA: {response}\n   sources: {sources}")
        answers.append({"question": question, "answer": str(response), "sources": sources})
    write_results(args.out, {"documents": len(documents), "nodes": len(nodes), "answers": answers})


SMOKE_FILES = {"path-params.md", "handling-errors.md", "query-params.md"}

if __name__ == "__main__":
    main()

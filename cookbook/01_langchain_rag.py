"""Recipe 1: a LangChain RAG chain over your documents, with lorag's hybrid retriever and the grounded chat model.

The chain is plain LCEL: ``retriever | lorag's RAG composition around ChatLorag`` (gates, cited prompt, loop
guard). The retriever fuses BM25 (exact terms, names, error codes) with MiniLM embeddings (paraphrases); the chat
model is SmolLM2-135M-Instruct in NF4, about a third of its float32 memory. Everything runs offline on a CPU.

    python cookbook/01_langchain_rag.py                 # all bundled docs, three questions, streamed
    python cookbook/01_langchain_rag.py --size smoke    # a few docs, one short answer (CI)

Expect each answer to cite the passages it used, and a question the documents cannot answer to be declined ("The
documents do not contain the answer.") when the relevance or answerability gate judges the passages off-topic or
without its answer, as ``lorag ask`` declines it.
"""

from __future__ import annotations

import time

from langchain_core.documents import Document

from _common import DOCS, parser, write_results
from langchain_lorag import ChatLorag, LoragHybridRetriever, LoragTextSplitter, create_rag_chain
from lorag.embedding import Embedder

QUESTIONS = [
    "How do I allow cross-origin requests from my frontend?",
    "How do I run code after returning a response?",
    "How do I serve static files?",
]


def main() -> None:
    args = parser(__doc__.splitlines()[0], "01_langchain_rag").parse_args()
    smoke = args.size == "smoke"
    paths = sorted(DOCS.rglob("*.md"))
    if smoke:
        paths = [p for p in paths if p.name in {"cors.md", "background-tasks.md", "static-files.md"}]
    docs = [Document(p.read_text(encoding="utf-8"), metadata={"source": str(p.relative_to(DOCS))}) for p in paths]

    splitter = LoragTextSplitter(method="markdown", chunk_size=256, chunk_overlap=32, tokenizer="minilm")
    chunks = splitter.split_documents(docs)
    started = time.perf_counter()
    retriever = LoragHybridRetriever.from_documents(chunks, Embedder("minilm", show_progress=True), k=3)
    index_seconds = time.perf_counter() - started

    llm = ChatLorag(model="smollm2-135m-instruct", quantization="none", max_tokens=24 if smoke else 120)
    chain = create_rag_chain(retriever, llm)
    answers = []
    for question in QUESTIONS[:1] if smoke else QUESTIONS:
        print(f"\nQ: {question}\nA: ", end="", flush=True)
        answer, sources = "", []
        for part in chain.stream(question):  # LCEL streams the answer token by token
            if "answer" in part:
                answer += part["answer"]
                print(part["answer"], end="", flush=True)
            sources = part.get("sources", sources)
        print("\n   sources:", ", ".join(f"[{d.metadata['number']}] {d.metadata['source']}" for d in sources))
        answers.append({"question": question, "answer": answer, "sources": [d.metadata["source"] for d in sources]})
    write_results(
        args.out,
        {"documents": len(docs), "chunks": len(chunks), "index_seconds": round(index_seconds, 2), "answers": answers},
    )


if __name__ == "__main__":
    main()

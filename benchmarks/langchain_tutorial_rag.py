"""The RAG a user following LangChain's RAG tutorial would write, on lorag's packaged weights: issue #15's baseline.

Plain LangChain on purpose, nothing from lorag but model paths: the folder's files as Documents,
``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)``, FAISS over ``HuggingFaceEmbeddings``
(all-MiniLM-L6-v2), the top 4 chunks stuffed into the tutorial's classic prompt, sent as one chat message to
SmolLM2-135M-Instruct through ``HuggingFacePipeline`` + ``ChatHuggingFace`` (fp32, greedy, 160 new tokens).
``return_full_text=False`` is set because without it the pipeline echoes the prompt into the answer.

Scoring fields: ``abstained`` is True when the answer, lower-cased with curly apostrophes made straight and white
space collapsed, contains "don't know", "do not know", "not sure" or "cannot answer" (the tutorial prompt asks the
model to say it doesn't know). ``sources`` are the 4 retrieved chunks, ``cited`` False (the tutorial does not cite).
``seconds`` covers retrieval and generation; ``completion_tokens`` is the answer's length in the model's tokens.

Needs ``langchain-community`` and ``langchain-huggingface`` (the latter with ``--no-deps``: it pins
``huggingface-hub<2``, which transformers 5 does not accept).

    python benchmarks/langchain_tutorial_rag.py benchmarks/data/hotpotqa_dev/docs \
        benchmarks/data/hotpotqa_dev/questions.jsonl --limit 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_huggingface import ChatHuggingFace, HuggingFaceEmbeddings, HuggingFacePipeline
from langchain_text_splitters import RecursiveCharacterTextSplitter

from lorag.models import resolve_model

TEMPLATE = (
    "Use the following pieces of context to answer the question at the end. If you don't know the answer, just say "
    "that you don't know, don't try to make up an answer.\n\n{context}\n\nQuestion: {question}\nHelpful Answer:"
)
ABSTAIN_PHRASES = ("don't know", "do not know", "not sure", "cannot answer")
DOC_SUFFIXES = (".txt", ".md")


def is_abstention(answer: str) -> bool:
    """The tutorial's "I don't know": one of ``ABSTAIN_PHRASES`` in the lower-cased, straightened answer."""
    text = " ".join(answer.lower().replace("\u2019", "'").split())
    return any(phrase in text for phrase in ABSTAIN_PHRASES)


def load_documents(docs_dir: Path) -> list[Document]:
    """Every .txt/.md file under ``docs_dir``; ``source`` is its posix path relative to the folder."""
    paths = sorted(p for p in docs_dir.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    return [
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.relative_to(docs_dir).as_posix()})
        for p in paths
    ]


def format_docs(docs: Sequence[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


def answer_questions(
    docs_dir: str | Path, questions: Sequence[Any], *, max_new_tokens: int = 160
) -> list[dict[str, Any]]:
    """Index ``docs_dir`` once, then answer each question (objects with ``id`` and ``question``, or such dicts)."""
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        load_documents(Path(docs_dir))
    )
    vectorstore = FAISS.from_documents(splits, HuggingFaceEmbeddings(model_name=resolve_model("minilm")))
    retriever = vectorstore.as_retriever(search_kwargs={"k": 4})

    llm = HuggingFacePipeline.from_model_id(
        model_id=resolve_model("smollm2-135m-instruct"),
        task="text-generation",
        model_kwargs={"dtype": torch.float32},
        pipeline_kwargs={"max_new_tokens": max_new_tokens, "do_sample": False, "return_full_text": False},
    )
    chat = ChatHuggingFace(llm=llm)
    chain = ChatPromptTemplate.from_messages([("human", TEMPLATE)]) | chat | StrOutputParser()

    predictions = []
    for q in questions:
        qid, question = (q["id"], q["question"]) if isinstance(q, dict) else (q.id, q.question)
        start = time.perf_counter()
        docs = retriever.invoke(question)
        answer = chain.invoke({"context": format_docs(docs), "question": question}).strip()
        seconds = time.perf_counter() - start
        predictions.append(
            {
                "id": qid,
                "answer": answer,
                "abstained": is_abstention(answer),
                "sources": [{"source": d.metadata["source"], "text": d.page_content, "cited": False} for d in docs],
                "seconds": seconds,
                "completion_tokens": len(chat.tokenizer(answer, add_special_tokens=False)["input_ids"]),
            }
        )
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs_dir", type=Path)
    parser.add_argument("questions", type=Path, help="JSONL: one {id, question, answers, supporting} a line")
    parser.add_argument("--limit", type=int, default=None, help="answer only the first N questions")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()
    lines = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    for prediction in answer_questions(args.docs_dir, lines[: args.limit], max_new_tokens=args.max_new_tokens):
        print(
            json.dumps(
                {k: v for k, v in prediction.items() if k != "sources"}
                | {"sources": [s["source"] for s in prediction["sources"]]},
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()

"""Which RAG prompt wording makes SmolLM2-135M-Instruct answer rather than list, echo or ramble (dev data only).

Runs ``lorag.rag.pipeline.RagPipeline`` on the dev split of ``benchmarks/squad_rag.py`` (articles never used for
testing) with each prompt variant, without any adapter, and prints per variant: token F1 and contains-gold on the
answerable questions, how many answers start as a numbered list, echo the instruction, cite a passage, hit the
token cap; and seconds per question. Usage::

    PYTHONPATH=src python benchmarks/rag_prompt_variants.py --data /tmp/squad-rag/dev --questions 30
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from lorag.evaluation.answers import f1_score, normalize_answer, strip_citations
from lorag.rag import prompt as rag_prompt

NO_ANSWER = rag_prompt.NO_ANSWER

VARIANTS: dict[str, tuple[str, str]] = {
    # name: (system prompt, user template with {context} and {question})
    "numbered-blocks (before #15)": (
        "Answer the question using only the numbered context blocks. Cite the blocks you used as [1], [2]. "
        f'If the context does not contain the answer, reply exactly: "{NO_ANSWER}"',
        "Context:\n{context}\n\nQuestion: {question}",
    ),
    "one-sentence, question last": (
        "You answer questions from the documents the user gives. Reply with one short sentence, then the number of "
        "the document you used in brackets, like [2]. If the documents do not contain the answer, reply exactly: "
        f'"{NO_ANSWER}"',
        "Documents:\n\n{context}\n\nQuestion: {question}\nAnswer in one short sentence and cite the document:",
    ),
    "short-answer, question first": (
        "Answer the question with a short answer taken from the documents, then cite the document as [n]. If the "
        f'documents do not contain the answer, reply exactly: "{NO_ANSWER}"',
        "Question: {question}\n\nDocuments:\n\n{context}\n\nQuestion: {question}\nShort answer:",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a dev folder of squad_rag.py (docs/, questions)")
    parser.add_argument("--questions", type=int, default=30, help="first N answerable questions")
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/lorag-prompt-variants-index"))
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args(argv)

    from lorag.llm import LoragEngine
    from lorag.rag.index import DocumentIndex
    from lorag.rag.pipeline import RagPipeline

    lines = (args.data / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [q for q in map(json.loads, lines) if q["answers"]][: args.questions]
    index = DocumentIndex(args.index_dir)
    index.sync(args.data / "docs")
    engine = LoragEngine("smollm2-135m-instruct", quantization="nf4")
    original = rag_prompt.user_message
    print("| variant | F1 | contains gold | numbered list | echoes instruction | cites | hit cap | s/question |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (system, template) in VARIANTS.items():

        def user_message(question: str, blocks: list, template: str = template) -> str:
            context = "\n\n".join(rag_prompt.format_block(i + 1, b) for i, b in enumerate(blocks))
            return template.format(context=context, question=question.strip())

        rag_prompt.user_message = user_message  # type: ignore[assignment]
        pipeline = RagPipeline(
            index, engine, k=3, max_new_tokens=args.max_tokens, min_relevance=None, system_prompt=system
        )
        f1s, contains, listed, echoed, cited, capped, seconds = [], [], 0, 0, 0, 0, []
        for q in questions:
            start = time.perf_counter()
            answer = pipeline.ask(q["question"])
            seconds.append(time.perf_counter() - start)
            text = strip_citations(answer.answer)
            f1s.append(max(f1_score(text, gold) for gold in q["answers"]))
            contains.append(any(normalize_answer(g) in normalize_answer(text) for g in q["answers"]))
            listed += bool(re.match(r"\s*\(?\d+[.)]", answer.answer))
            echoed += "context" in answer.answer.lower() or "documents" in answer.answer.lower()
            cited += answer.cited
            capped += answer.usage.get("completion_tokens", 0) >= args.max_tokens
        n = len(questions)
        print(
            f"| {name} | {statistics.mean(f1s):.3f} | {sum(contains) / n:.2f} | {listed}/{n} | {echoed}/{n} | "
            f"{cited}/{n} | {capped}/{n} | {statistics.median(seconds):.1f} |",
            flush=True,
        )
    rag_prompt.user_message = original
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

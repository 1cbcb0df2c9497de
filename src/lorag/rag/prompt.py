"""The RAG prompt: numbered context blocks with source ids, fitted to the model's context window in tokens.

Blocks go in best-ranked first and stop before the window would overflow, so the prompt never exceeds it and the
most relevant evidence is never the part that is cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

NO_ANSWER = "The documents do not contain the answer."

SYSTEM_PROMPT = (
    "Answer the question using only the numbered context blocks. Cite the blocks you used as [1], [2]. "
    f'If the context does not contain the answer, reply exactly: "{NO_ANSWER}"'
)

_CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# The no-answer reply as small models vary it: "documents"/"context"/"files"..., "do(es) not"/"doesn't", "the"/"an".
_NO_ANSWER_REPLY = re.compile(
    r"\b(?:documents?|context|files?|passages?|texts?|blocks?) (?:do|does) ?n[o']?t contain (?:the|an|any) answer\b"
)


@dataclass(frozen=True)
class ContextBlock:
    """One retrieved passage: its text, where it comes from, and its retrieval score."""

    text: str
    source: str
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        where = self.source
        section = self.metadata.get("section")
        page = self.metadata.get("page")
        if section:
            where += f" > {section}"
        if page:
            where += f" (page {page})"
        return where


@dataclass(frozen=True)
class RagPrompt:
    """Chat messages ready for a chat template, and the blocks that made it into them (numbered from 1)."""

    messages: list[dict[str, str]]
    blocks: list[ContextBlock]


def format_block(number: int, block: ContextBlock) -> str:
    return f"[{number}] {block.label()}\n{block.text.strip()}"


def user_message(question: str, blocks: Sequence[ContextBlock]) -> str:
    """The user turn: the numbered passages, then the question."""
    context = "\n\n".join(format_block(i + 1, b) for i, b in enumerate(blocks))
    return f"Context:\n{context}\n\nQuestion: {question.strip()}" if blocks else f"Question: {question.strip()}"


def build_rag_prompt(
    question: str,
    blocks: Sequence[ContextBlock],
    *,
    count_tokens: Callable[[list[dict[str, str]]], int],
    context_window: int,
    max_new_tokens: int,
    system_prompt: str = SYSTEM_PROMPT,
) -> RagPrompt:
    """Fit as many blocks as the window allows, best first, and return the messages.

    Args:
        question: the user's question (not empty).
        blocks: retrieved passages, best-ranked first.
        count_tokens: tokens a message list takes once the chat template is applied (with the generation prompt).
        context_window: the model's maximum sequence length.
        max_new_tokens: room kept for the answer.

    Raises:
        ValueError: an empty question, or a window too small for the question alone.
    """
    if not question or not question.strip():
        raise ValueError("the question is empty")
    budget = context_window - max_new_tokens

    def messages_for(chosen: list[ContextBlock]) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": user_message(question, chosen)},
        ]

    if count_tokens(messages_for([])) > budget:
        raise ValueError(
            f"the question alone needs more than the {budget} tokens left in a {context_window}-token window "
            f"after {max_new_tokens} answer tokens"
        )
    chosen: list[ContextBlock] = []
    for block in blocks:
        if count_tokens(messages_for([*chosen, block])) <= budget:
            chosen.append(block)
    return RagPrompt(messages_for(chosen), chosen)


def cited_numbers(answer: str, n_blocks: int) -> list[int]:
    """The block numbers an answer cites as ``[n]`` or ``[n, m]``, in first-cited order, ignoring numbers out of
    range."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        for number in match.group(1).split(","):
            n = int(number)
            if 1 <= n <= n_blocks and n not in seen:
                seen.append(n)
    return seen


def says_no_answer(answer: str) -> bool:
    """Whether an answer says the documents lack the answer (``NO_ANSWER`` or a small model's variant of it)."""
    text = " ".join(re.sub(r"[^\w\s']", " ", answer.lower()).split())
    return _NO_ANSWER_REPLY.search(text.replace("doesn't", "does not").replace("don't", "do not")) is not None

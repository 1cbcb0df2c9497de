"""Follow-up searches for multi-hop questions, shared by every lorag front end.

A multi-hop question ("where was the director of Johnny Angel born?") needs a passage that shares few words with it:
the one about a bridge entity named only in another passage. One search with the question rarely brings both, so
with ``hops`` above 1 each further hop searches with the question and the passage the previous hop added (the best
one, for the first) and adds its best passage not already found. On HotpotQA dev questions the prompt held both
gold paragraphs for 33% of the questions with the default two passages and 53% with one follow-up passage added (45%
with a plain third one), and F1 rose from 0.145 to 0.200 with the answerability gate off; on single-hop SQuAD dev
questions the extra passage distracts the 135M reader (F1 0.379 to 0.308), so the default is one hop
(``benchmarks/results/rag_defaults.md`` section 8).

A question whose passages the answerability gate declines gets a second look first: the follow-up searches of
``hops_when_declined`` hops (2 by default), then the gate again. Only questions about to be declined pay for it, so
single-hop answers stay as they were, and a multi-hop question whose answer sits in a passage sharing few words with
it can still be answered (dev sets: SQuAD F1 and abstention recall unchanged, HotpotQA F1 0.145 to 0.155;
``rag_defaults.md`` section 10).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lorag.rag.composition import Declined

#: Searches per question: the question's own only.
DEFAULT_HOPS = 1
#: Searches made before the answerability gate's decline stands: one follow-up search.
DEFAULT_HOPS_WHEN_DECLINED = 2

Hit = TypeVar("Hit")


def check_hops(hops: int, name: str = "hops") -> int:
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 1:
        raise ValueError(f"{name} must be an integer >= 1 (1: the question's own search only), got {hops!r}")
    return hops


def second_look(declined: Declined | None, hops: int, hops_when_declined: int) -> bool:
    """Whether a declined prompt is searched further before the decline stands: the answerability gate declined it
    (not the relevance gate, which finds nothing on topic) and more searches are allowed when declined."""
    return declined is not None and declined.gate == "answerability" and hops_when_declined > hops


def follow_up_query(question: str, passage: str) -> str:
    """What a follow-up hop searches with: the question, then the passage that leads on."""
    return f"{question}\n{passage}"


def follow_ups(
    question: str,
    found: Sequence[Hit],
    search: Callable[[str, int], Sequence[Hit]],
    hops: int,
    *,
    key: Callable[[Hit], Hashable],
    text: Callable[[Hit], str],
) -> list[Hit]:
    """The passages ``hops - 1`` follow-up searches add to ``found`` (the question's own results, best first), in
    hop order; ``search(query, n)`` returns the top ``n`` for a query. A hop that finds nothing new ends the chain."""
    check_hops(hops)
    if not found:
        return []
    seen = {key(hit) for hit in found}
    added: list[Hit] = []
    leading = found[0]
    for _ in range(hops - 1):
        hits = search(follow_up_query(question, text(leading)), len(seen) + 1)  # one more than can be old
        new = next((hit for hit in hits if key(hit) not in seen), None)
        if new is None:
            break
        added.append(new)
        seen.add(key(new))
        leading = new
    return added

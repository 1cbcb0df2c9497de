"""Follow-up searches for multi-hop questions, shared by every lorag front end.

A multi-hop question ("where was the director of Johnny Angel born?") needs a passage that shares few words with it:
the one about a bridge entity named only in another passage. One search with the question rarely brings both, so
with ``hops`` above 1 each further hop searches with the question and the passage the previous hop added (the best
one, for the first) and adds its best passage not already found. On HotpotQA dev questions the prompt held both
gold paragraphs for 33% of the questions with two passages and 53% with one follow-up passage added (45% with a
plain third one). With the first grounded adapter on the NF4 base the extra passage distracted the reader on
single-hop SQuAD questions (F1 0.379 to 0.308, ``benchmarks/results/rag_defaults.md`` section 8); the shipped one on
the full-precision base reads past it (SQuAD dev F1 0.462 to 0.463, abstention recall 0.75 both) while HotpotQA F1
rose from 0.210 to 0.254 and contains-gold from 0.149 to 0.201 (``rag_defaults.md`` section 14), so two searches
is the default.

``hops_when_declined`` searches are made before a decline of the answerability gate stands: the follow-ups up to that
count, then the gate again. It defaults to two, no search past the default ``hops`` (a third search for declined
questions changed no dev answer, section 14); with ``hops=1`` it gives declined questions the follow-up search
(section 10).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lorag.rag.composition import Declined

#: Searches per question: the question's own and one follow-up.
DEFAULT_HOPS = 2
#: Searches made before the answerability gate's decline stands: none past ``DEFAULT_HOPS``.
DEFAULT_HOPS_WHEN_DECLINED = DEFAULT_HOPS

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

"""The question's own search keeps the chunks of the files it ranks first, not only its top ``k`` chunks.

A chunk is a piece of a file. On a folder of short files (a SQuAD paragraph, a HotpotQA paragraph) the two coincide,
but a docs page is chunked into dozens, and a how-to question's answer is often in the page's second- or third-best
chunk: behind the best chunk of a page that only mentions the topic. On the Poetry how-to dev set
(``benchmarks/data/howto/poetry``) the top 2 chunks held the answer's chunk for 62% of the questions; reading the top
4 and keeping those of the 2 files they rank first, for 74%, with 3.4 passages on average instead of 2. On SQuAD
and HotpotQA folders it changed the passages of 8 questions in 120 and 1 in 200. With two chunks per file F1 rose on the
Poetry dev set from 0.084 to 0.125 (``benchmarks/results/rag_defaults.md`` section 29), but the default stays one:
given five chunks of one page, the grounded adapter writes its lower-case no-answer reply, which the no-answer ban
lets through, to questions it answered before (``make demo``'s among them; section 30 measures the fuller ban that
would stop it, which the llama.cpp engine cannot apply yet).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

Hit = TypeVar("Hit")

#: Chunks the question's search reads per file it keeps: it reads ``k * DEFAULT_CHUNKS_PER_FILE`` and keeps those of
#: the ``k`` files ranked first; 1 is the top ``k`` chunks (see the module's docstring for why it is not 2 yet).
DEFAULT_CHUNKS_PER_FILE = 1


def check_chunks_per_file(chunks_per_file: int) -> int:
    """``chunks_per_file`` if it is a whole number >= 1; otherwise a ``ValueError`` that says what it means."""
    if isinstance(chunks_per_file, bool) or not isinstance(chunks_per_file, int) or chunks_per_file < 1:
        raise ValueError(
            f"chunks_per_file must be a whole number >= 1 (1: the top k chunks, whatever their files), "
            f"got {chunks_per_file!r}"
        )
    return chunks_per_file


def chunks_of_best_files(ranked: Sequence[Hit], k: int, *, source: Callable[[Hit], Hashable]) -> list[Hit]:
    """The hits of ``ranked`` (best first) whose ``source`` is one of the first ``k`` sources they name, in rank
    order: ``ranked``'s first ``k`` hits and, when some of them share a file, the next hits of the same files."""
    kept: set[Hashable] = set()
    chosen = []
    for hit in ranked:
        name = source(hit)
        if name not in kept and len(kept) < k:
            kept.add(name)
        if name in kept:
            chosen.append(hit)
    return chosen

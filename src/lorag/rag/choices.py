"""Choice questions ("Which band was formed first, Wavves or Social Code?"): the answer is one of the options.

Asked to choose, a 135M reader often answers with something else the passages say: a year ("1950 [1]" for "Was
Pepper Keenan or Rob Parissi born first?"), a third name, a phrase. On the HotpotQA multi-hop dev questions of
``benchmarks/results/rag_defaults.md`` (section 15) scoring each option as the reply (its log-probability, teacher
forced after the prompt the model would answer) and answering with the likelier one was right on more of them than
generating freely. So when a question names two options, the pipeline answers with the option the model scores
higher, citing the first passage that names it; an option no passage names has no evidence, so when the passages
name one option only, that one is the answer (when they name neither, the model answers as usual).

``question_options`` reads the options from the question alone: the two phrases around its one "or", each a run of
capitalised words (with the small words names keep inside: "Spirit of the West", "Hot Lead and Cold Feet"), the
left one after the question's last colon or comma when it has one, quotes around either dropped; the question mark
is optional (users leave it out, and so do 4 of the 1,086 HotpotQA dev questions of ``hotpot_dev_more.py``). A
question whose "or" does not join two such names ("Who purchased or commissioned ...?") has no options and is
answered as any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lorag.rag.prompt import ContextBlock

#: log P(reply | messages) for each reply, or None when the model cannot score (``reply_scorer``).
ScoreReplies = Callable[[list[dict[str, str]], Sequence[str]], "list[float] | None"]

_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
#: Lower-case words a name keeps inside it ("Battle of Cold Harbor", "Basset Bleu de Gascogne").
_NAME_JOINERS = frozenset(
    {"of", "the", "and", "de", "la", "le", "du", "von", "van", "der", "del", "da", "di", "in", "on", "for", "a", "an"}
    | {"&", "at", "to"}
)
#: The words a choice question opens with; never part of the first option ("Was Pepper Keenan or Rob Parissi born
#: first?"). What, when, where, how and why questions name no options ("When was Apollo 6, or AS-502, tested?").
_OPENERS = frozenset(
    {"which", "who", "whom", "whose", "was", "is", "were", "are", "did", "does", "do", "has", "have", "had"}
)
#: Quotes around a title ("Poleconomy"), which the passages need not write.
_QUOTES = "\"'“”‘’"
#: Longest option, in words: a longer run is a clause, not a name.
_MAX_OPTION_WORDS = 10


def _name_word(word: str) -> bool:
    """A capitalised word or a number, quotes and brackets aside."""
    bare = word.strip("\"'“”‘’()")
    return bool(bare) and (bare[0].isupper() or bare[0].isdigit())


def _name(words: Sequence[str]) -> str | None:
    """The words as an option: joiners trimmed from the ends; None unless a capitalised word is left."""
    words = list(words)
    while words and words[0] in _NAME_JOINERS:
        words.pop(0)
    while words and words[-1].lower() in _NAME_JOINERS:
        words.pop()
    if not words or len(words) > _MAX_OPTION_WORDS or not any(_name_word(w) for w in words):
        return None
    return " ".join(words).strip(" ,:;").strip(_QUOTES)


def _name_run(words: Iterable[str]) -> list[str]:
    """The leading words that can belong to a name (capitalised, a number, or a joiner)."""
    run: list[str] = []
    for word in words:
        if not (_name_word(word) or word.lower() in _NAME_JOINERS):
            break
        run.append(word)
    return run


def question_options(question: str) -> tuple[str, str] | None:
    """The two options a question asks to choose between, or None when it asks no such choice."""
    text = question.strip()
    if len(_OR.findall(text)) != 1 or "and/or" in text.lower():
        return None
    if text.split(maxsplit=1)[0].lower() not in _OPENERS:
        return None
    left, right = _OR.split(text.rstrip("?"), maxsplit=1)
    left = left.rstrip(" ,")
    for mark in (":", ","):
        if mark in left:
            first = _name(left.rsplit(mark, 1)[1].split())
            break
    else:
        first = _name(_name_run(reversed(left.split()[1:]))[::-1])
    second = _name(_name_run(re.split(r"[,;?]", right)[0].split()))
    if first is None or second is None or first.lower() == second.lower():
        return None
    if any(option.count("(") != option.count(")") for option in (first, second)):
        return None  # "... accountants (Chartered or CPA)?": a bracket, not two names
    return first, second


def _cited(option: str, blocks: Sequence[ContextBlock]) -> int | None:
    """The number of the first passage that names ``option`` (any case), None when none does."""
    wanted = option.casefold()
    return next((n for n, block in enumerate(blocks, start=1) if wanted in block.text.casefold()), None)


def reply_scorer(engine: Any, adapter: str | None) -> ScoreReplies | None:
    """Scores replies under ``adapter`` with an engine that can (``LoragEngine`` / ``LlamaCppEngine``
    ``.continuation_logprobs``); None for one that cannot (a remote engine, another framework's model)."""
    score = getattr(engine, "continuation_logprobs", None)
    if not callable(score):
        return None
    return lambda messages, replies: score(messages, replies, adapter=adapter)


def choose(
    question: str, messages: list[dict[str, str]], blocks: Sequence[ContextBlock], score: ScoreReplies | None
) -> str | None:
    """The answer to a choice question asked with ``messages`` over ``blocks``, citing the first passage that names
    it: of the options the passages name, the one ``score`` gives more (the only one, when one alone is named). None
    when the question names no options, no passage names one, or nothing can score (then the model generates)."""
    options = question_options(question) if score is not None else None
    named = [(option, number) for option in options or () if (number := _cited(option, blocks)) is not None]
    if score is None or not named:
        return None
    if len(named) == 2:
        scores = score(messages, [option for option, _ in named])
        if scores is None:
            return None
        named = [named[int(scores[1] > scores[0])]]
    option, number = named[0]
    return f"{option} [{number}]"

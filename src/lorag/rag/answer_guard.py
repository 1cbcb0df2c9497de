"""``AnswerGuard``: decide what of a generated answer is final *before* it is shown, so streaming shows exactly it.

Small models under greedy decoding fall into loops ("1) 1) 2) 3) ...", the same sentence again, list items that
differ only by their number, "10000000000..." to the token cap) and, when they hit the cap, stop mid-phrase or on a
dangling colon. The guard cuts a loop where its second copy starts, a runaway run of characters with the sentence it
is in (nothing of that sentence can be trusted: "100000" of it would be a wrong number), and, at the cap, cuts back
to the last sentence end. Because a cut can only fall at a sentence start or inside the unfinished sentence, the
guard releases text one finished sentence (or line) at a time: every released piece is part of the final answer, and
the released pieces add up to it exactly.
"""

from __future__ import annotations

import re

#: A repeated run of this many words (numbers made alike) is a loop; legitimate answers rarely repeat 8 words.
LOOP_NGRAM = 8
#: A sentence or line this long (normalised characters) seen twice is a loop.
MIN_REPEATED_UNIT = 12
#: A word holding one to four letters or digits repeated over this many characters is a runaway run ("100000...",
#: "abababab..."); written-out numbers stop well short of it (a trillion has 12 zeros).
MIN_RUNAWAY_RUN = 24

_WORD = re.compile(r"\S+")
_NUMBER = re.compile(r"\d+")
_REPEATED_CHARACTERS = re.compile(r"([^\W_]{1,4}?)\1+")  # letters and digits: "-----" is a rule, not a loop
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)]|\[\d+\])\s*")
# A sentence ends at . ! ? (optionally closed by quotes/brackets, or a citation like [2]) before white space, or
# at a line end. Decimals ("3.5") and "e.g." mid-line have no white space after the point, or are rare enough.
_UNIT_END = re.compile(r"(?:[.!?][\"')\]]*(?:\s*\[\d+(?:,\s*\d+)*\])*(?=\s)|\n)")
_MARKER_WORD = re.compile(r"\(?\d+[.)]$")  # "2." or "(3)": a list number, not a sentence end
_DANGLING_MARKER = re.compile(r"(?:^|\s)(?:[-*•]|\(?\d+[.)])\s*$")  # a list item cut before its text


def _unit_ends(text: str) -> list[int]:
    """Ends of the finished sentences and lines of ``text``; a list number ("2.") ends no sentence."""
    ends = []
    for match in _UNIT_END.finditer(text):
        word = text[: match.end()].rsplit(None, 1)[-1] if text[: match.end()].strip() else ""
        if match.group() != "\n" and _MARKER_WORD.match(word):
            continue
        ends.append(match.end())
    return ends


def _unit_key(unit: str) -> str:
    """A sentence or line compared for repeats: without list markers, numbers made alike, case and spaces folded."""
    key = _LIST_MARK.sub("", unit.strip())
    return " ".join(_NUMBER.sub("#", key).lower().split())


def _word_keys(text: str) -> list[tuple[str, int]]:
    return [(_NUMBER.sub("#", m.group().lower()), m.start()) for m in _WORD.finditer(text)]


def _runaway_sentence_start(text: str) -> int | None:
    """The start of the sentence holding a runaway run of characters (``MIN_RUNAWAY_RUN``), or None."""
    for word in _WORD.finditer(text):
        if any(len(run.group()) >= MIN_RUNAWAY_RUN for run in _REPEATED_CHARACTERS.finditer(word.group())):
            return last_sentence_end(text[: word.start()], complete=False) or 0
    return None


def loop_start(text: str) -> int | None:
    """Where ``text`` starts repeating itself: the start of the second copy of a sentence, line or
    ``LOOP_NGRAM``-word run (numbers made alike), or of the sentence holding a runaway run of characters; None
    when it does not."""
    cuts: list[int] = []
    if (runaway := _runaway_sentence_start(text)) is not None:
        cuts.append(runaway)
    seen: set[str] = set()
    start = 0
    for end in _unit_ends(text):
        unit = text[start:end]
        key = _unit_key(unit)
        if len(key) >= MIN_REPEATED_UNIT:
            if key in seen:
                cuts.append(start + len(unit) - len(unit.lstrip()))
                break
            seen.add(key)
        start = end
    words = _word_keys(text)
    grams: set[tuple[str, ...]] = set()
    for i in range(len(words) - LOOP_NGRAM + 1):
        gram = tuple(w for w, _ in words[i : i + LOOP_NGRAM])
        if gram in grams:
            cuts.append(words[i][1])
            break
        grams.add(gram)
    return min(cuts) if cuts else None


def last_sentence_end(text: str, *, complete: bool = True) -> int | None:
    """The end of the last finished sentence or line in ``text``, or None when there is none. With ``complete``
    the text has ended, so a final "." ends a sentence; otherwise only one followed by white space does (as in
    ``loop_start``, so nothing is released before it could be seen to repeat)."""
    ends = [e for e in _unit_ends(text + " " if complete else text) if text[:e].strip()]
    return ends[-1] if ends else None


def tidy_end(text: str) -> int:
    """Where ``text`` should end: before a trailing unfinished lead-in (a last sentence or line ending in ':'),
    and before trailing white space."""
    end = len(text.rstrip())
    while text[:end].endswith(":"):
        previous = last_sentence_end(text[: end - 1])
        if previous is None:
            break
        end = len(text[:previous].rstrip())
    return end


class AnswerGuard:
    """Feed generated text with ``push``; it returns the text that is final. ``finish`` returns the rest.

    The released pieces, joined, are exactly ``answer``: the answer starts at the first non-space character and
    never ends in white space.

    Args:
        cut_at_sentence: When generation stopped at the token cap (``finish(truncated=True)``), end the answer at
            the last sentence end rather than mid-phrase.
    """

    def __init__(self, *, cut_at_sentence: bool = True) -> None:
        self.cut_at_sentence = cut_at_sentence
        self.text = ""
        self.looped = False
        self._start: int | None = None  # first non-space character of the answer
        self._released = 0  # end of the released text, in ``text`` coordinates

    def push(self, piece: str) -> str:
        """Add generated text; returns newly final text (possibly empty). Sets ``looped`` when a loop began."""
        if self.looped:
            return ""
        self.text += piece
        cut = loop_start(self.text)
        if cut is not None:
            self.looped = True
            kept = self.text[:cut]
            dangling = _DANGLING_MARKER.search(kept)  # "... 2." left by a cut list
            self.text = kept[: max(dangling.start() if dangling else cut, self._released)]
            return ""
        end = last_sentence_end(self.text, complete=False)
        if end is None:
            return ""
        return self._release_to(tidy_end(self.text[:end]))

    def finish(self, *, truncated: bool = False) -> str:
        """The rest of the final answer; ``truncated`` when generation hit the token cap."""
        text = self.text
        if truncated and self.cut_at_sentence and not self.looped:
            end = last_sentence_end(text)
            if end is not None:
                text = text[:end]
        self.text = text[: max(tidy_end(text), self._released)]
        return self._release_to(len(self.text))

    @property
    def answer(self) -> str:
        """The text released so far; after ``finish``, the final answer."""
        return "" if self._start is None else self.text[self._start : self._released]

    def _release_to(self, end: int) -> str:
        if self._start is None:
            stripped = len(self.text) - len(self.text.lstrip())
            if stripped >= end:
                return ""
            self._start = self._released = stripped
        if end <= self._released:
            return ""
        new = self.text[self._released : end]
        self._released = end
        return new

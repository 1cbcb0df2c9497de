"""Rule-based sentence boundaries for English and Spanish, with abbreviations and decimals handled.

A candidate boundary is terminal punctuation (``. ! ? …``, optionally followed by closing quotes or brackets)
followed by whitespace, or a blank line. Decimals (``3.14``) never qualify because no whitespace follows the
point. A period after a known abbreviation is not a boundary when the next word could not start a sentence, and
never after a title (``Dr. Smith``, ``Sra. López``) or an initial (``J. R. R. Tolkien``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lorag.chunking.base import strip_span


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Titles and other abbreviations that never end a sentence before a capitalised word.
TITLES: frozenset[str] = _words(
    # English
    "mr mrs ms mx dr prof sr st mt ft gen gov sen rep rev hon capt col lt sgt cf vs fig figs eq eqs "
    # Spanish
    "sra srta sres sras dra lic ing arq profa d dña ud uds vd vds pág págs núm art cap ej av avda cía dpto admón "
    "sto sta fr"
)
#: Abbreviations that may end a sentence: a boundary only when the next word is capitalised.
MAY_END: frozenset[str] = _words(
    # English
    "etc al inc ltd co corp jr no nos vol vols pp p ch sec approx dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec "
    # Spanish
    "aprox ene abr ago dic tel núms"
)

# The look-behind starts a match only at the first mark of a run: "!!!...!" with no space after would otherwise be
# retried from every mark, quadratic in the run's length.
_CANDIDATE = re.compile(r"(?<![.!?…。！？])[.!?…。！？]+[\"'”’»)\]]*(?=\s)|\n[^\S\n]*\n")
_OPENERS = "¿¡\"'“‘«([-–—*"


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Stripped sentence spans covering every non-whitespace character of ``text[start:end]`` in order."""
    return list(iter_sentence_spans(text, start, end))


def iter_sentence_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """``sentence_spans`` one at a time, for texts with millions of sentences."""
    end = len(text) if end is None else end
    begin = start
    for m in _CANDIDATE.finditer(text, start, end):
        paragraph = m.group()[0] == "\n"
        if not paragraph and not _is_boundary(text, m.start(), m.end(), end):
            continue
        cut = m.start() if paragraph else m.end()
        s, e = strip_span(text, begin, cut)
        if e > s:
            yield s, e
        begin = cut
    s, e = strip_span(text, begin, end)
    if e > s:
        yield s, e


def _is_boundary(text: str, punct_start: int, punct_end: int, limit: int) -> bool:
    marks = text[punct_start:punct_end]
    nxt = _next_word_char(text, punct_end, limit)
    if "." not in marks or any(c in marks for c in "!?…。！？"):
        return True
    if nxt is None:
        return True
    word_start = punct_start
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:punct_start].lstrip(_OPENERS).lower()
    capital = nxt.isupper() or nxt in "¿¡"
    if word in TITLES or (len(word) == 1 and word.isalpha() and text[punct_start - 1].isupper()):
        return False
    if word in MAY_END or "." in word:  # e.g. "e.g", "U.S", "EE.UU", "a.m"
        return capital
    return not nxt.islower()


def _next_word_char(text: str, pos: int, limit: int) -> str | None:
    while pos < limit and (text[pos].isspace() or text[pos] in _OPENERS):
        if text[pos] in "¿¡":
            return text[pos]
        pos += 1
    return text[pos] if pos < limit else None

"""``AnswerGuard``: loops cut where they begin, capped answers end at a sentence, and what is streamed is the answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorag.rag.answer_guard import AnswerGuard, loop_start
from lorag.rag.prompt import cited_numbers, says_no_answer


def _guarded(pieces: list[str], *, truncated: bool = False) -> tuple[str, AnswerGuard]:
    guard = AnswerGuard()
    streamed = ""
    for piece in pieces:
        streamed += guard.push(piece)
        if guard.looped:
            break
    streamed += guard.finish(truncated=truncated)
    return streamed, guard


def _chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        # numbered items that differ only by their number
        ("CORS is set up with CORSMiddleware [1].\n1. Add the middleware to the app.\n2. Add the middleware to the "
         "app.\n3. Add the", "CORS is set up with CORSMiddleware [1].\n1. Add the middleware to the app."),
        # a counting loop: nothing but list numbers
        ("1) 1) 2) 3) 4) 5) 6) 7) 8) 9) 10) 11) 12) 13) 14) 42", ""),
        # the same sentence again
        ("Paris is the capital [2]. Paris is the capital [2]. Paris is", "Paris is the capital [2]."),
        # an 8-word run repeated inside one long sentence
        ("It runs the app and then it runs the app and then it runs the app and then it",
         "It runs the app and then"),
    ],
)  # fmt: skip
def test_loops_are_cut_where_the_second_copy_starts(generated: str, expected: str) -> None:
    streamed, guard = _guarded(_chars(generated))
    assert guard.looped
    assert streamed == guard.answer == expected


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        ("1" + "0" * 159, ""),  # HotpotQA dev, the llama.cpp engine: the whole answer, to the token cap
        ("Paris [1]. The city has 1" + "0" * 40, "Paris [1]."),  # the sentence holding the run goes with it
        ("It says haha" + "ha" * 20, ""),
    ],
)
def test_a_runaway_run_of_characters_is_cut_with_its_sentence(generated: str, expected: str) -> None:
    streamed, guard = _guarded(_chars(generated), truncated=True)
    assert guard.looped
    assert streamed == guard.answer == expected


@pytest.mark.parametrize(
    "text",
    ["About 1000000000000 people [1].", "A rule ------------------------ here.", "Pi is 3.14159265358979323846."],
)
def test_long_numbers_and_rules_are_not_runaway_runs(text: str) -> None:
    streamed, guard = _guarded(_chars(text))
    assert not guard.looped and streamed == text


def test_a_capped_answer_ends_at_its_last_sentence() -> None:
    streamed, _ = _guarded(_chars("Use CORSMiddleware [1]. Then set allow_origins to the list of"), truncated=True)
    assert streamed == "Use CORSMiddleware [1]."


def test_an_uncapped_answer_keeps_its_last_phrase() -> None:
    streamed, _ = _guarded(_chars("Westwood One [2]"))
    assert streamed == "Westwood One [2]"


def test_a_dangling_lead_in_is_dropped() -> None:
    streamed, _ = _guarded(_chars("Add the middleware [1].\nHere is the code:"), truncated=True)
    assert streamed == "Add the middleware [1]."
    streamed, _ = _guarded(_chars("Add the middleware [1]. Here is how:\n\n"))
    assert streamed == "Add the middleware [1]."


def test_decimals_and_list_numbers_do_not_end_sentences() -> None:
    streamed, _ = _guarded(_chars("Version 3.5 is out. It is good."))
    assert streamed == "Version 3.5 is out. It is good."
    assert loop_start("1. first point here\n2. second point there\n") is None


_WORDS = st.sampled_from(
    ["1.", "2)", "the", "app", "CORS", "[1]", "it", "runs", "Paris.", ":", "\n", "  ", "x", "1" + "0" * 30]
)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_WORDS, max_size=60), cuts=st.lists(st.integers(1, 7), max_size=80), truncated=st.booleans())
def test_streamed_text_is_exactly_the_final_answer(words: list[str], cuts: list[int], truncated: bool) -> None:
    text = " ".join(words)
    pieces, position = [], 0
    for size in cuts:
        pieces.append(text[position : position + size])
        position += size
    pieces.append(text[position:])
    streamed, guard = _guarded(pieces, truncated=truncated)
    assert streamed == guard.answer
    assert streamed == streamed.strip()
    assert text.lstrip().startswith(streamed)  # nothing invented, only cut


def test_no_answer_replies_and_their_variants_are_recognised() -> None:
    assert says_no_answer("The documents do not contain the answer.")
    assert says_no_answer("The document contains only blocks.\n\nThe document does not contain the answer.")
    assert says_no_answer("The context doesn't contain an answer")
    assert says_no_answer("The files do not contain the answer.")
    assert not says_no_answer("Paris [1]")
    assert not says_no_answer("The documents contain the answer: Paris [1]")


def test_citations_in_lists_are_read() -> None:
    assert cited_numbers("A [1, 3] and B [2][9]", 3) == [1, 3, 2]

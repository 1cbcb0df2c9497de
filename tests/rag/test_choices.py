"""Choice questions: the options read from the question, and the cited answer for the chosen one."""

from __future__ import annotations

import pytest

from lorag.rag.choices import choose, question_options
from lorag.rag.prompt import ContextBlock


@pytest.mark.parametrize(
    ("question", "options"),
    [
        ("Which band was formed first, Wavves or Social Code?", ("Wavves", "Social Code")),
        ("Who was born first D. Ross Lederman or Stefan Ruzowitzky?", ("D. Ross Lederman", "Stefan Ruzowitzky")),
        ("Was Pepper Keenan or Rob Parissi born first?", ("Pepper Keenan", "Rob Parissi")),
        ("Did Franki Valli sing with Hellogoodbye or The Four Seasons?", ("Hellogoodbye", "The Four Seasons")),
        ("Is the Marsilea or the Brabejum the genus of more species?", ("Marsilea", "Brabejum")),
        ("Which band was active the longest, Spirit of the West or Big Pig?", ("Spirit of the West", "Big Pig")),
        (
            "Which battle, the Battle of Cold Harbor, or the Second Battle of Bull Run, was fought first?",
            ("Battle of Cold Harbor", "Second Battle of Bull Run"),
        ),
        ("Which singer leads the label: Nate Albert or Rod Stewart?", ("Nate Albert", "Rod Stewart")),
        ("which is older, 1984 or Brave New World?", ("1984", "Brave New World")),
        ("Which band was formed first, Wavves or Social Code", ("Wavves", "Social Code")),  # no question mark
        (
            'Which came to market first, "Hey Pa! There\'s a Goat on the Roof" or "Poleconomy"',
            ("Hey Pa! There's a Goat on the Roof", "Poleconomy"),
        ),
    ],
)
def test_the_two_options_are_read_from_the_question(question: str, options: tuple[str, str]) -> None:
    assert question_options(question) == options


@pytest.mark.parametrize(
    "question",
    [
        "Who purchased or commissioned the works of European artists?",  # "or" joins two verbs
        "When was Apollo 6, or AS-502, tested?",  # an apposition; when-questions name no options
        "What is an example of a problem not known to be in P or NP-complete?",
        "Which came first, Rome or Athens or Sparta?",  # more than two
        "Who has managed and/or advised Ambrose Mendy?",
        "Which band was formed first, Wavves or wavves?",  # the same option twice
        "Which is it, the cat or the dog?",  # no names
        "Who is on the same level as engineers and accountants (Chartered or CPA)?",  # a bracket
    ],
)
def test_questions_without_two_named_options_have_none(question: str) -> None:
    assert question_options(question) is None


QUESTION = "Which band was formed first, Wavves or Social Code?"
BOTH = [
    ContextBlock("Wavves formed in 2008.", "a.txt"),
    ContextBlock("Social Code (SOCIAL CODE) formed in 1999.", "b.txt"),
]


class Scores:
    """A scorer that records the replies it was asked about."""

    def __init__(self, scores: dict[str, float] | None) -> None:
        self.scores, self.asked = scores, []  # type: ignore[var-annotated]

    def __call__(self, messages: list[dict[str, str]], replies: list[str]) -> list[float] | None:
        self.asked.append(list(replies))
        return None if self.scores is None else [self.scores[r] for r in replies]


@pytest.mark.parametrize(("scores", "answer"), [((-1.0, -2.0), "Wavves [1]"), ((-3.0, -2.0), "Social Code [2]")])
def test_the_likelier_option_is_the_answer_citing_its_passage(scores: tuple[float, float], answer: str) -> None:
    score = Scores(dict(zip(["Wavves", "Social Code"], scores, strict=True)))
    assert choose(QUESTION, [], BOTH, score) == answer
    assert score.asked == [["Wavves", "Social Code"]]


def test_an_option_no_passage_names_is_never_the_answer() -> None:
    score = Scores({"Wavves": 0.0, "Social Code": -9.0})
    only_social_code = [ContextBlock("Filler.", "x.txt"), ContextBlock("social code formed in 1999.", "b.txt")]
    assert choose(QUESTION, [], only_social_code, score) == "Social Code [2]"  # any case names it
    assert score.asked == []  # one named option: nothing to score
    assert choose(QUESTION, [], [ContextBlock("Filler.", "x.txt")], score) is None  # neither named: generate


def test_without_options_or_a_scorer_the_model_generates() -> None:
    score = Scores({})
    assert choose("When was Wavves formed?", [], BOTH, score) is None and score.asked == []
    assert choose(QUESTION, [], BOTH, None) is None
    assert choose(QUESTION, [], BOTH, Scores(None)) is None  # the model cannot score (virtual-token adapters)

"""``RagPipeline``: retrieve from a ``DocumentIndex``, fit a cited prompt to the model's window, answer.

Small models answer from irrelevant context rather than admit they cannot. So before generating, the pipeline
checks the best passage's dense similarity against ``min_relevance`` (off-topic questions), then asks the
answerability gate (``lorag.rag.answerability``) whether a passage in the prompt holds the answer (on-topic
questions whose answer is not there); below either threshold it answers ``NO_ANSWER`` without calling the model.
Generated text goes through an ``AnswerGuard`` before it is streamed, so loops and mid-phrase endings are cut
before anyone sees them and the streamed text is the final answer.

The gates, the prompt fitting and what the generated text means are ``lorag.rag.composition``'s, shared with the
LangChain chain and the LlamaIndex query engine; this module retrieves, calls the engine and adds what needs the
engine itself (the no-answer reply's probability, ``abstain_confidence``, and the token ban that replaces it).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from lorag.rag.answer_guard import AnswerGuard
from lorag.rag.answerability import AnswerabilityGate
from lorag.rag.best_files import DEFAULT_CHUNKS_PER_FILE, check_chunks_per_file, chunks_of_best_files
from lorag.rag.choices import choose, reply_scorer
from lorag.rag.composition import DEFAULT_MIN_ANSWERABILITY as DEFAULT_MIN_ANSWERABILITY
from lorag.rag.composition import DEFAULT_MIN_RELEVANCE as DEFAULT_MIN_RELEVANCE
from lorag.rag.composition import Declined, Plan, RagComposition, check_question, no_answer_ban
from lorag.rag.composition import chat_token_counter as chat_token_counter
from lorag.rag.hops import DEFAULT_HOPS, DEFAULT_HOPS_WHEN_DECLINED, check_hops, follow_ups, second_look
from lorag.rag.prompt import NO_ANSWER, SYSTEM_PROMPT, ContextBlock, says_no_answer
from lorag.rag.question_gain import QuestionGain
from lorag.retrieval import HybridHit

#: Passages per question. On the SQuAD dev split (benchmarks/rag_defaults.py) k=2 answered as well as 3 or 4 (F1
#: 0.255 / 0.232 / 0.244 with the grounded adapter) in the least time (median 1.6 / 2.0 / 2.6 s).
DEFAULT_K = 2
#: The lowest threshold at which the grounded adapter answered >= 85% of the answerable SQuAD dev questions (0.87;
#: F1 0.307, vs 0.255 trusting every no-answer reply; benchmarks/rag_defaults.py).
DEFAULT_ABSTAIN_CONFIDENCE = 0.6


class ChatEngine(Protocol):
    """What the pipeline needs from an LLM engine (``lorag.llm.LoragEngine`` satisfies it).

    An engine that also scores replies (``continuation_logprobs(messages, replies, adapter=...)``, as
    ``LoragEngine`` does) lets the pipeline answer choice questions by choosing (``lorag.rag.choices``)."""

    tokenizer: Any
    context_window: int

    def submit(self, prompt: str | None = None, *, messages: Any = None, adapter: str | None = None, **kw: Any) -> Any:
        """A request handle: iterating it gives text deltas; then ``result_value`` has the token log-probs."""
        ...


class Searchable(Protocol):
    def search(self, query: str, k: int = 5) -> list[HybridHit]: ...


@dataclass(frozen=True)
class Source:
    """A passage given to the model, numbered as in the prompt; ``cited`` when the answer cites its number.

    ``score`` is the fused retrieval score; ``relevance`` the dense cosine similarity to the question (what the
    relevance gate compares with ``min_relevance``), None when the passage was found by BM25 alone or by a follow-up
    search. ``hop`` is 0 for the question's own search, n for the passage the n-th follow-up search added (``hops``).
    """

    number: int
    source: str
    text: str
    start: int | None
    end: int | None
    score: float
    cited: bool
    section: str | None = None
    page: int | None = None
    relevance: float | None = None
    hop: int = 0


@dataclass
class Answer:
    """The answer text and the passages the model was given.

    ``abstained`` when the documents were judged not to hold the answer: retrieval found nothing relevant enough,
    the answerability gate judged the passages not to hold it, or the model said so. ``cited`` when the answer cites
    at least one passage. When a gate ``declined`` the question, the model was not asked: ``sources`` is empty and
    ``declined_passages`` holds what the gate read, so a reader can judge the decline and open the nearest pages.
    """

    question: str
    answer: str
    sources: list[Source] = field(default_factory=list)
    abstained: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    abstain_probability: float | None = None
    """When the model began the no-answer reply: the probability it gave that reply (see ``abstain_confidence``)."""
    declined: Declined | None = None
    declined_passages: list[Source] = field(default_factory=list)

    @property
    def cited(self) -> bool:
        return any(s.cited for s in self.sources)

    def cited_sources(self) -> list[Source]:
        """The passages the answer cites (none when the model cited none)."""
        return [s for s in self.sources if s.cited]

    def declined_json(self) -> dict[str, Any] | None:
        """The decline as ``--json`` prints it (``gate``, ``reason``, ``score``, ``passages``), None when asked."""
        if self.declined is None:
            return None
        return {**asdict(self.declined), "passages": [asdict(s) for s in self.declined_passages]}

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "cited": self.cited,
            "abstain_probability": self.abstain_probability,
            "declined": self.declined_json(),
            "sources": [asdict(s) for s in self.sources],
            "usage": self.usage,
        }


def blocks_from_hits(hits: Sequence[HybridHit], *, hop: int = 0) -> list[ContextBlock]:
    """Prompt blocks from hits; each block's metadata also keeps the hit's dense score as ``relevance`` (None for
    the hits of a follow-up search, ``hop`` > 0, whose scores are for another query)."""
    return [
        ContextBlock(
            h.text,
            str(h.metadata.get("source", h.id)),
            h.score,
            {**h.metadata, "relevance": None if hop else h.component_scores.get("dense"), "hop": hop},
        )
        for h in hits
    ]


class RagPipeline:
    """Question in, cited answer out.

    Args:
        index: anything with ``search(query, k)`` returning hybrid hits (a ``DocumentIndex``).
        engine: a chat engine (``LoragEngine``).
        k: passages the question's search keeps (fewer reach the prompt if the window is small); with
            ``chunks_per_file`` above 1, the chunks of this many files.
        chunks_per_file: the question's search reads its ``k * chunks_per_file`` best chunks and keeps those of the
            ``k`` files they rank first (``lorag.rag.best_files``); 1: its top ``k`` chunks, whatever their files.
        max_new_tokens: answer length limit, kept free in the window.
        min_relevance: abstain when the best passage's dense score is below this; ``None`` never abstains.
        adapter: default LoRA adapter for answers (per call overrides).
        generation: further sampling options for the engine (``repetition_penalty``, ``no_repeat_ngram_size``, ...).
        system_prompt: the instruction (the shipped grounded adapter was trained with the default).
        abstain_confidence: keep the model's "not in the documents" reply only when the model gave that reply at
            least this probability (the product of its tokens'; not the first token's alone, which an answer
            starting "The ..." shares); below it, answer with that reply forbidden. ``None`` always keeps it.
        min_answerability: decline when no passage in the prompt scores this with the answerability gate;
            ``None`` or 0 turns the gate off (``DEFAULT_MIN_ANSWERABILITY`` is what ``lorag ask`` uses with the
            shipped grounded adapter).
        answerability: the gate's coefficients; by default lorag's shipped ones: with an engine that scores tokens
            (``LoragEngine``, ``LlamaCppEngine``), the gate that also reads the model's question gain
            (``lorag.rag.question_gain``).
        hops: searches per question; each one past the first adds the best new passage of a search with the question
            and the passage the previous one added (``lorag.rag.hops``: for multi-hop questions).
        hops_when_declined: searches made before the answerability gate's decline stands: a question it declines
            with ``hops`` searches is searched this far and judged again (``lorag.rag.hops``).
        choices: answer a question that names two options ("..., A or B?") with the option the model scores higher
            as its reply, when the engine can score replies (``lorag.rag.choices``); False always generates.
    """

    def __init__(
        self,
        index: Searchable,
        engine: ChatEngine,
        *,
        k: int = DEFAULT_K,
        chunks_per_file: int = DEFAULT_CHUNKS_PER_FILE,
        max_new_tokens: int = 160,
        min_relevance: float | None = DEFAULT_MIN_RELEVANCE,
        adapter: str | None = None,
        generation: dict[str, Any] | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        abstain_confidence: float | None = DEFAULT_ABSTAIN_CONFIDENCE,
        min_answerability: float | None = None,
        answerability: AnswerabilityGate | None = None,
        hops: int = DEFAULT_HOPS,
        hops_when_declined: int = DEFAULT_HOPS_WHEN_DECLINED,
        choices: bool = True,
    ) -> None:
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if abstain_confidence is not None and not 0.0 <= abstain_confidence <= 1.0:
            raise ValueError(f"abstain_confidence must be in [0, 1], got {abstain_confidence}")
        self.index = index
        self.engine = engine
        self.k = k
        self.chunks_per_file = check_chunks_per_file(chunks_per_file)
        self.hops = check_hops(hops)
        self.hops_when_declined = check_hops(hops_when_declined, "hops_when_declined")
        self.adapter = adapter
        self.generation = dict(generation or {})
        self.abstain_confidence = abstain_confidence
        self.choices = choices
        self._count = chat_token_counter(engine.tokenizer)
        self.composition = RagComposition(
            count_tokens=self._count,
            context_window=engine.context_window,
            max_new_tokens=max_new_tokens,
            system_prompt=system_prompt,
            min_relevance=min_relevance,
            min_answerability=min_answerability,
            answerability=answerability,
            statistics=index,
            question_gain=QuestionGain.of_engine(engine),
        )

    @property
    def max_new_tokens(self) -> int:
        return self.composition.max_new_tokens

    @property
    def min_relevance(self) -> float | None:
        return self.composition.min_relevance

    @property
    def min_answerability(self) -> float | None:
        return self.composition.min_answerability

    @property
    def answerability(self) -> AnswerabilityGate | None:
        return self.composition.answerability

    def _prepare(self, question: str) -> Plan:
        check_question(question)
        ranked = self.index.search(question, self.k * self.chunks_per_file)
        hits = chunks_of_best_files(ranked, self.k, source=lambda h: h.metadata.get("source") or h.id)

        def plan_with(hops: int) -> Plan:
            added = follow_ups(question, hits, self.index.search, hops, key=lambda h: h.id, text=lambda h: h.text)
            hopped = [b for n, h in enumerate(added, 1) for b in blocks_from_hits([h], hop=n)]
            return self.composition.plan(question, blocks_from_hits(hits) + hopped)

        plan = plan_with(self.hops)
        if second_look(plan.declined, self.hops, self.hops_when_declined):
            plan = plan_with(self.hops_when_declined)
        return plan

    @staticmethod
    def _sources(plan: Plan, cited: frozenset[int]) -> list[Source]:
        """The plan's passages, numbered as in the prompt (as the gate read them, when it declined)."""
        return [
            Source(
                number=i,
                source=b.source,
                text=b.text,
                start=b.metadata.get("start"),
                end=b.metadata.get("end"),
                score=b.score,
                cited=i in cited,
                section=b.metadata.get("section"),
                page=b.metadata.get("page"),
                relevance=b.metadata.get("relevance"),
                hop=b.metadata.get("hop", 0),
            )
            for i, b in enumerate(plan.blocks, start=1)
        ]

    def ask(self, question: str, *, adapter: str | None = None) -> Answer:
        """Answer ``question`` from the index, citing the passages used."""
        *_, answer = self.stream(question, adapter=adapter)
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str, *, adapter: str | None = None) -> Iterator[str | Answer]:
        """Yield answer text pieces as they become final, then the finished ``Answer``.

        Greedy decoding. Text passes through an ``AnswerGuard``: generation stops when the answer starts repeating
        itself (cut where the repetition began), and an answer that hits the token cap ends at its last sentence
        end. A no-answer reply the model was not confident of (see ``abstain_confidence``) is replaced, before
        anything is shown, by its answer with that reply forbidden. A choice question is answered by choosing
        (``choices``). The pieces yielded add up to ``Answer.answer``.
        """
        plan = self._prepare(question)
        messages = plan.messages
        if plan.declined is not None:
            yield NO_ANSWER
            read = self._sources(plan, frozenset())
            yield Answer(question, NO_ANSWER, [], abstained=True, declined=plan.declined, declined_passages=read)
            return
        adapter = adapter or self.adapter
        score = reply_scorer(self.engine, adapter) if self.choices else None
        if (chosen := choose(question, messages, plan.blocks, score)) is not None:
            yield chosen
            outcome = self.composition.outcome(plan, chosen)
            usage = {"prompt_tokens": self._count(messages), "completion_tokens": 0}
            yield Answer(question, outcome.answer, self._sources(plan, outcome.cited), outcome.abstained, usage)
            return
        abstain_probability = None
        never_keep = self.abstain_confidence is not None and self.abstain_confidence >= 1.0
        for attempt in range(int(never_keep), 2):  # a no-answer reply never kept is forbidden from the start
            guard = AnswerGuard()
            options: dict[str, Any] = {"max_tokens": self.max_new_tokens, "temperature": 0.0, **self.generation}
            if attempt:
                options["sequence_bias"] = no_answer_ban(self.engine.tokenizer, messages)
            handle = self.engine.submit(messages=messages, adapter=adapter, **options)
            hold = self.abstain_confidence is not None and not attempt  # a no-answer reply may yet be replaced
            usage, truncated, held, shown = yield from self._generate(handle, guard, hold)
            result = handle.result_value
            unshown_no_answer = hold and not shown and says_no_answer(guard.text)
            if unshown_no_answer and result is not None and result.token_logprobs:
                abstain_probability = math.exp(sum(result.token_logprobs))
                if abstain_probability < self.abstain_confidence:  # type: ignore[operator]
                    continue
            yield from held
            break
        if piece := guard.finish(truncated=truncated):
            yield piece
        text = guard.answer
        if not usage:  # stopped early: count what was generated
            usage = {
                "prompt_tokens": self._count(messages),
                "completion_tokens": len(self.engine.tokenizer(guard.text, add_special_tokens=False)["input_ids"]),
            }
        outcome = self.composition.outcome(plan, text)
        if outcome.answer != text:  # nothing generated: the no-answer sentence
            yield outcome.answer
        sources = self._sources(plan, outcome.cited)
        yield Answer(question, outcome.answer, sources, outcome.abstained, usage, abstain_probability)

    @staticmethod
    def _generate(
        handle: Any, guard: AnswerGuard, hold: bool
    ) -> Generator[str, None, tuple[dict[str, int], bool, list[str], bool]]:
        """Feed the request's text through ``guard``, yielding what is final; returns (usage, hit the cap, held,
        anything yielded).

        With ``hold``, a reply that opens as the no-answer reply is held back (returned, not yielded) so that it
        can still be replaced."""
        usage: dict[str, int] = {}
        truncated = False
        held: list[str] = []
        shown = False
        deltas = iter(handle)
        with closing(deltas):  # closing the stream early cancels the request and frees its batch row
            for delta in deltas:
                if delta.text and (piece := guard.push(delta.text)):
                    if held or (hold and not shown and says_no_answer(guard.answer)):
                        held.append(piece)
                    else:
                        shown = True
                        yield piece
                if delta.usage is not None:
                    usage = {
                        "prompt_tokens": delta.usage.prompt_tokens,
                        "completion_tokens": delta.usage.completion_tokens,
                    }
                truncated = delta.finish_reason == "length"
                if guard.looped:
                    break
        return usage, truncated, held, shown

"""The RAG composition every lorag front end shares: gate the question, fit the prompt, finish the answer.

``RagPipeline`` (``lorag ask``), the LangChain chain (``create_rag_chain``) and the LlamaIndex query engine
(``create_query_engine``) differ only in how they retrieve and how they call the model. What they decide is here,
framework-free, so one question over the same passages and model gets the same answer from each:

1. ``RagComposition.plan``: decline (which gate, why) or a prompt fitted to the window.

   - *retrieval*: nothing was retrieved.
   - *relevance*: the best passage's dense similarity to the question is below ``min_relevance`` (off-topic
     questions). A passage without a dense score (found by BM25 alone) counts as below it. When *no* passage
     carries one (a retriever without a dense side: BM25, TF-IDF, a foreign retriever) the gate cannot judge and
     is skipped.
   - *answerability*: ``lorag.rag.answerability``'s ``P(answerable)`` of the passages that fit the prompt is below
     ``min_answerability``. Its term statistics and sentence embedder are read from ``statistics`` (a
     ``DocumentIndex``, a lorag retriever or a framework wrapper of one, see ``gate_statistics``); without BM25
     statistics every word weighs the same and without an embedder the best dense score stands in for the best
     sentence's, as the gate does. Like the relevance gate it needs dense scores, so it is skipped when no passage
     has one. With ``question_gain`` (a local engine's, ``QuestionGain.of_engine``) the shipped gate that
     also reads how much each passage makes the question likelier to the model is used; without, the six-input one.

2. ``guarded``: the generated text through an ``AnswerGuard`` (loops cut, an answer that hit the token cap ended at
   a sentence) as it streams, so what is shown is the final answer.
3. ``RagComposition.outcome``: the final answer (an empty one, or the model's own "not in the documents" reply, is
   an abstention) and the passage numbers it cites.

When the answerability gate is on, it alone decides whether to decline: the model is asked to answer with the
no-answer reply forbidden (``no_answer_ban``, passed as ``sequence_bias``), since its own declines separated
answerable from unanswerable questions at chance there.

Each passage is a ``ContextBlock`` whose ``metadata["relevance"]`` is its dense cosine (None without one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lorag.rag.answer_guard import AnswerGuard
from lorag.rag.answerability import AnswerabilityGate, SentenceSimilarity, TermStatistics
from lorag.rag.prompt import NO_ANSWER, SYSTEM_PROMPT, ContextBlock, build_rag_prompt, cited_numbers, says_no_answer
from lorag.rag.question_gain import QuestionGain

#: Below this cosine similarity between the question and the best passage, the documents are taken not to hold the
#: answer. Chosen on the bundled FastAPI extract with all-MiniLM-L6-v2 (``benchmarks/rag_relevance_gate.py``): ten
#: on-topic questions scored 0.54-0.81 with their best passage, eight off-topic ones 0.11-0.18.
DEFAULT_MIN_RELEVANCE = 0.3
#: Decline when the answerability gate gives the prompt's passages a lower ``P(answerable)``: what ``lorag ask`` uses
#: with the shipped grounded adapter, the gate then deciding alone (the model's own no-answer replies separated
#: answerable from unanswerable questions at AUC 0.57). The highest threshold that kept >= 88% of the answerable
#: questions answered, with the relevance gate, on the SQuAD train fit and check sets (0.896 / 0.894, abstention
#: recall 0.645 / 0.69) and the dev split (0.88, 0.75); ``benchmarks/answerability_gate.py``,
#: ``benchmarks/results/rag_defaults.md`` section 6. The same rule gives 0.55 for the gate that also reads the model
#: (fit / check / dev 0.892 / 0.906 / 0.88 answered, recall 0.68 / 0.69 / 0.80; section 21).
DEFAULT_MIN_ANSWERABILITY = 0.55
#: Metadata key under which lorag's LangChain and LlamaIndex retrievers put each hit's component scores.
RETRIEVER_METADATA_KEY = "lorag"

CountTokens = Callable[[list[dict[str, str]]], int]
Gate = Literal["retrieval", "relevance", "answerability"]


@dataclass(frozen=True)
class Declined:
    """Why a question is answered ``NO_ANSWER`` without calling the model: the ``gate`` and a sentence saying why;
    ``score`` is what the gate compared with its threshold (None for *retrieval*)."""

    gate: Gate
    reason: str
    score: float | None = None


@dataclass(frozen=True)
class Plan:
    """What to do with a question: ``messages`` for the model and the ``blocks`` in them (numbered from 1), or, when
    ``declined``, no messages and the blocks that were retrieved."""

    messages: list[dict[str, str]]
    blocks: list[ContextBlock]
    declined: Declined | None = None


@dataclass(frozen=True)
class Outcome:
    """The final answer; ``abstained`` when it says the documents lack the answer; ``cited`` the block numbers it
    cites (none when it abstained)."""

    answer: str
    abstained: bool
    cited: frozenset[int] = field(default_factory=frozenset)


def chat_token_counter(tokenizer: Any) -> CountTokens:
    """Count a message list's tokens as the chat template renders it, generation prompt included."""

    def count(messages: list[dict[str, str]]) -> int:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    return count


def check_question(question: object) -> None:
    """Refuse an empty question before anything is retrieved."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty: ask something about your documents")


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """About 4 characters a token plus a few for each message's template: for models whose tokenizer lorag cannot
    reach."""
    return sum(len(m["content"]) // 4 + 4 for m in messages)


def dense_relevance(metadata: Mapping[str, Any]) -> float | None:
    """A framework document's dense cosine to the question, as lorag's hybrid retrievers record it
    (``metadata["lorag"]["component_scores"]["dense"]``); None for other retrievers' documents."""
    info = metadata.get(RETRIEVER_METADATA_KEY)
    scores = info.get("component_scores") if isinstance(info, Mapping) else None
    dense = scores.get("dense") if isinstance(scores, Mapping) else None
    return None if dense is None else float(dense)


def gate_statistics(source: Any) -> tuple[TermStatistics, SentenceSimilarity | None]:
    """The answerability gate's term statistics and sentence embedder, read from ``source``: a ``DocumentIndex``, a
    ``HybridRetriever`` / ``BM25Index``, or a LangChain / LlamaIndex lorag retriever holding one (as ``.retriever``
    or ``.index``). Uniform term weights and no embedder when there is none (a foreign retriever)."""
    layers = [source, getattr(source, "retriever", None), getattr(source, "index", None)]
    layers += [getattr(layer, "dense", None) for layer in layers]
    found = [layer for layer in layers if layer is not None]
    terms = next(
        (TermStatistics.of_index(x) for x in found if hasattr(getattr(x, "sparse", x), "term_idf")),
        TermStatistics.of_index(None),
    )
    sentences = next((s for x in found if (s := SentenceSimilarity.of_index(x)) is not None), None)
    return terms, sentences


class RagComposition:
    """Decide what to do with a question and its retrieved passages, and what the generated text means.

    Args:
        count_tokens: tokens a message list takes once the chat template is applied (``chat_token_counter`` for a
            lorag engine's tokenizer, ``estimate_tokens`` otherwise).
        context_window: the model's window in tokens.
        max_new_tokens: room kept for the answer.
        system_prompt: the instruction (the shipped grounded adapter was trained with the default).
        min_relevance: decline when the best passage's dense score is below this; None turns the gate off.
        min_answerability: decline when the answerability gate gives the prompt's passages less; None or 0 turns
            the gate off.
        answerability: the gate's coefficients; by default lorag's shipped ones (``AnswerabilityGate.shipped``).
        statistics: where the answerability gate reads term statistics and the embedder (``gate_statistics``); read
            at each question, so an index that grows is followed.
        question_gain: the answering model's base scoring the question after each passage, for a gate that reads it
            (``lorag.rag.question_gain``); None: a gate that does not.

    Relations: ``lorag.rag.pipeline.RagPipeline``, ``langchain_lorag.create_rag_chain`` and
    ``llama_index.query_engine.lorag.create_query_engine`` each build one.
    """

    def __init__(
        self,
        *,
        count_tokens: CountTokens,
        context_window: int,
        max_new_tokens: int = 160,
        system_prompt: str = SYSTEM_PROMPT,
        min_relevance: float | None = DEFAULT_MIN_RELEVANCE,
        min_answerability: float | None = None,
        answerability: AnswerabilityGate | None = None,
        statistics: Any = None,
        question_gain: QuestionGain | None = None,
    ) -> None:
        if max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        if min_answerability is not None and not 0.0 <= min_answerability <= 1.0:
            raise ValueError(f"min_answerability must be in [0, 1], got {min_answerability}")
        self.count_tokens = count_tokens
        self.context_window = context_window
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.min_relevance = min_relevance
        self.min_answerability = min_answerability or None
        self.answerability = answerability or (
            AnswerabilityGate.shipped(question_gain) if self.min_answerability else None
        )
        if self._reads_model and question_gain is None:
            raise ValueError(
                "this answerability gate reads the model's question gain: pass question_gain "
                "(QuestionGain.of_engine of a LoragEngine), or a gate from AnswerabilityGate.load()"
            )
        self.statistics = statistics
        self.question_gain = question_gain

    @property
    def _reads_model(self) -> bool:
        """Whether the gate needs ``question_gain`` (a gate of one's own need not say: it does not)."""
        return bool(getattr(self.answerability, "reads_model", False))

    def plan(self, question: str, blocks: Sequence[ContextBlock]) -> Plan:
        """Decline the question, or fit the blocks (best first) into the prompt.

        Raises:
            ValueError: an empty question, or no block fits the window beside the question and the answer.
        """
        check_question(question)
        blocks = list(blocks)
        if not blocks:
            return Plan([], [], Declined("retrieval", "no passage was retrieved"))
        dense = [b.metadata.get("relevance") for b in blocks]
        scored = any(d is not None for d in dense)
        best = max((d for d in dense if d is not None), default=None)
        if self.min_relevance is not None and best is not None and best < self.min_relevance:
            reason = f"the best passage's dense similarity {best:.3f} is below min_relevance {self.min_relevance}"
            return Plan([], blocks, Declined("relevance", reason, best))
        prompt = build_rag_prompt(
            question,
            blocks,
            count_tokens=self.count_tokens,
            context_window=self.context_window,
            max_new_tokens=self.max_new_tokens,
            system_prompt=self.system_prompt,
        )
        if not prompt.blocks:
            raise ValueError(
                f"no retrieved passage fits the model's {self.context_window}-token window next to the "
                f"question and {self.max_new_tokens} answer tokens; index with smaller chunks or lower max_new_tokens"
            )
        if self.answerability is not None and self.min_answerability is not None and scored:
            terms, sentences = gate_statistics(self.statistics)
            answerable = self.answerability.probability(
                question,
                [b.text for b in prompt.blocks],
                [b.metadata.get("relevance") for b in prompt.blocks],
                terms,
                sentences,
                *((self.question_gain, self.min_answerability) if self._reads_model else ()),
            )
            if answerable < self.min_answerability:
                reason = f"P(answerable) {answerable:.3f} is below min_answerability {self.min_answerability}"
                return Plan([], prompt.blocks, Declined("answerability", reason, answerable))
        return Plan(prompt.messages, prompt.blocks)

    def generation_options(self, plan: Plan, tokenizer: Any) -> dict[str, Any]:
        """Options for the model call that answers ``plan``: with the answerability gate on, the gate alone decides
        (as in ``lorag ask``), so the no-answer reply is forbidden (``no_answer_ban``); needs the local model's
        tokenizer (None: nothing to add)."""
        if self.min_answerability is None or tokenizer is None or plan.declined is not None:
            return {}
        return {"sequence_bias": no_answer_ban(tokenizer, plan.messages)}

    @staticmethod
    def outcome(plan: Plan, text: str) -> Outcome:
        """The final answer for ``plan`` given the guarded text the model generated (``guarded``'s pieces, joined)."""
        if plan.declined is not None:
            return Outcome(NO_ANSWER, True)
        if not text or says_no_answer(text):
            return Outcome(text or NO_ANSWER, True)
        return Outcome(text, False, frozenset(cited_numbers(text, len(plan.blocks))))


def guarded(deltas: Iterable[tuple[str, bool]], guard: AnswerGuard | None = None) -> Iterator[str]:
    """Feed ``(text, hit the token cap)`` deltas through an ``AnswerGuard`` and yield the text as it becomes final.

    Stops reading (and closes ``deltas`` when it can, which cancels a lorag request) once the answer starts
    repeating itself. The pieces add up to the final answer; ``RagComposition.outcome`` says what it means.
    """
    guard = guard or AnswerGuard()
    truncated = False
    iterator = iter(deltas)
    try:
        for text, capped in iterator:
            if text and (piece := guard.push(text)):
                yield piece
            truncated = capped
            if guard.looped:
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    if piece := guard.finish(truncated=truncated):
        yield piece


def no_answer_ban(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[tuple[tuple[int, ...], float], ...]:
    """``sequence_bias`` that forbids the reply to ``messages`` to open with the no-answer sentence: its first tokens
    ("The", "Documents") are banned only right after the prompt's last tokens, so they stay free everywhere else."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt, dict) or hasattr(prompt, "keys"):
        prompt = prompt["input_ids"]
    tail = tuple(int(i) for i in prompt[-3:])
    firsts = {tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in (NO_ANSWER, "Documents", "documents")}
    return tuple(((*tail, int(first)), -100.0) for first in sorted(firsts))


def resolve_min_answerability(min_answerability: float | None, grounded_adapter: bool) -> float | None:
    """The answerability threshold a front end uses: the one given (0: off), else ``DEFAULT_MIN_ANSWERABILITY`` when
    the answer comes from the shipped grounded adapter (the threshold was chosen for it), off otherwise."""
    if min_answerability is None:
        return DEFAULT_MIN_ANSWERABILITY if grounded_adapter else None
    return min_answerability or None

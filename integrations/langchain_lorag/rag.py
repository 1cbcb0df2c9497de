"""``create_rag_chain``: an LCEL chain (retriever | lorag's RAG composition around a chat model) that returns the
answer, the numbered sources it was given (each marked ``cited`` when the answer cites its number), whether it
abstained and, when a gate declined the question, which and why.

What the chain decides is ``lorag.rag.composition``'s, as for ``lorag ask``: the relevance and answerability gates
(a declined question is answered "The documents do not contain the answer." without calling the model), the prompt
fitted to the chat model's window in tokens (exactly for ``ChatLorag``: its tokenizer and chat template; by a
4-characters-per-token estimate for other models), the loop guard on the streamed text, and citations. A
``ChatLorag`` over SmolLM2-135M-Instruct with no adapter chosen answers with lorag's shipped grounded-answer adapter
(``lorag.rag.grounded``), and then, as ``lorag ask`` does, with the answerability gate on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, cast

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import convert_to_messages
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.runnables.utils import AddableDict

from langchain_lorag.retrievers import _LoragRetriever as LoragRetriever
from lorag.rag.answerability import AnswerabilityGate
from lorag.rag.best_files import DEFAULT_CHUNKS_PER_FILE, check_chunks_per_file, chunks_of_best_files
from lorag.rag.choices import ScoreReplies, choose, reply_scorer
from lorag.rag.composition import (
    DEFAULT_MIN_RELEVANCE,
    CountTokens,
    RagComposition,
    chat_token_counter,
    dense_relevance,
    estimate_tokens,
    guarded,
    resolve_min_answerability,
)
from lorag.rag.grounded import use_grounded_adapter
from lorag.rag.hops import DEFAULT_HOPS, DEFAULT_HOPS_WHEN_DECLINED, check_hops, follow_ups, second_look
from lorag.rag.prompt import NO_ANSWER, SYSTEM_PROMPT, ContextBlock
from lorag.rag.question_gain import QuestionGain


def _unwrap(llm: Runnable[Any, Any]) -> tuple[Any, dict[str, Any]]:
    """The model under ``.bind``/``configurable_fields``, and the keyword arguments the bindings give it (the
    outermost binding's first)."""
    target: Any = llm
    bound: dict[str, Any] = {}
    while hasattr(target, "bound") or hasattr(target, "default"):
        bound = {**(getattr(target, "kwargs", None) or {}), **bound}
        target = getattr(target, "bound", None) or target.default
    return target, bound


def _with_grounded_adapter(llm: Runnable[Any, Any]) -> tuple[Runnable[Any, Any], bool]:
    """Bind the shipped grounded-answer adapter to a ChatLorag over its base when no adapter was chosen; says
    whether it did."""
    target, bound = _unwrap(llm)
    if "adapter" in bound or not hasattr(target, "get_engine") or getattr(target, "adapter", None) is not None:
        return llm, False
    name = use_grounded_adapter(target.get_engine())
    return (llm, False) if name is None else (llm.bind(adapter=name), True)


def _local_tokenizer(llm: Runnable[Any, Any]) -> Any:
    """The tokenizer of a ChatLorag on a local engine (also through ``.bind``/``configurable_fields``), else None."""
    target, _ = _unwrap(llm)
    tokenizer = getattr(target.get_engine(), "tokenizer", None) if hasattr(target, "get_engine") else None
    return tokenizer if hasattr(tokenizer, "apply_chat_template") else None


def _local_scorer(llm: Runnable[Any, Any]) -> ScoreReplies | None:
    """Scores replies with a ChatLorag's engine under the adapter the chain answers with (a binding's, else the
    model's own), for choice questions; None for other chat models."""
    target, bound = _unwrap(llm)
    if not hasattr(target, "get_engine"):
        return None
    return reply_scorer(target.get_engine(), bound.get("adapter") or getattr(target, "adapter", None))


def _local_question_gain(llm: Runnable[Any, Any]) -> QuestionGain | None:
    """A ChatLorag's engine scoring questions after passages, for the answerability gate; None for other models."""
    target, _ = _unwrap(llm)
    return QuestionGain.of_engine(target.get_engine()) if hasattr(target, "get_engine") else None


def _window_of(llm: Runnable[Any, Any], context_window: int | None) -> tuple[CountTokens, int]:
    """Exact counting for a local ChatLorag, an estimate otherwise; the window from ChatLorag's engine."""
    target, _ = _unwrap(llm)
    window = context_window or (target.get_engine().context_window if hasattr(target, "get_engine") else 4096)
    tokenizer = _local_tokenizer(llm)
    return (chat_token_counter(tokenizer) if tokenizer is not None else estimate_tokens), window


def _text(chunk: Any) -> str:
    """The text of a chat model's message chunk (or of a plain string from an LLM)."""
    if isinstance(chunk, str):
        return chunk
    content = getattr(chunk, "content", "")
    if isinstance(content, str):
        return content
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content if isinstance(p, (str, dict)))


def _capped(chunk: Any) -> bool:
    """Whether the chunk says generation stopped at the token cap (``ChatLorag`` and most chat models say so)."""
    return (getattr(chunk, "response_metadata", None) or {}).get("finish_reason") == "length"


def _block(number: int, document: Document) -> ContextBlock:
    """A retrieved document as a prompt block; its ``relevance`` is the dense cosine lorag's hybrid retriever
    recorded (``metadata["lorag"]``), None for other retrievers' documents and for a follow-up search's
    (``metadata["hop"]`` > 0), whose scores are for another query."""
    source = str(document.metadata.get("source") or document.id or f"document {number}")
    relevance = None if document.metadata.get("hop") else dense_relevance(document.metadata)
    metadata = {**document.metadata, "relevance": relevance}
    return ContextBlock(document.page_content, source, float(document.metadata.get("score", 0.0)), metadata)


def create_rag_chain(
    retriever: BaseRetriever,
    llm: BaseChatModel | Runnable[Any, Any],
    *,
    context_window: int | None = None,
    max_new_tokens: int = 160,
    system_prompt: str = SYSTEM_PROMPT,
    grounded: bool = True,
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE,
    min_answerability: float | None = None,
    answerability: AnswerabilityGate | None = None,
    hops: int = DEFAULT_HOPS,
    hops_when_declined: int = DEFAULT_HOPS_WHEN_DECLINED,
    choices: bool = True,
    chunks_per_file: int = DEFAULT_CHUNKS_PER_FILE,
) -> Runnable[Any, dict[str, Any]]:
    """Build ``question -> {"answer": str, "sources": [Document], "abstained": bool, "declined": dict | None}``
    from any retriever and chat model.

    Args:
        retriever: any LangChain retriever. ``LoragHybridRetriever`` works best: its documents carry the dense
            similarity the gates read, and its index the term statistics and embedder of the answerability gate.
            With a retriever whose documents have no dense score (``LoragBM25Retriever``, a foreign one) both gates
            are skipped; with a foreign hybrid, see ``lorag.rag.composition.gate_statistics``.
        llm: any chat model or runnable over messages (``ChatLorag``, also bound to an adapter).
        context_window: the model's window in tokens; read from ``ChatLorag``, else 4096 unless given.
        max_new_tokens: room kept for the answer.
        system_prompt: the instruction; the default asks for ``[n]`` citations and an explicit "not in context".
        grounded: answer with lorag's grounded-answer adapter when ``llm`` is a ``ChatLorag`` over the model it was
            trained for and no adapter is chosen (``False``: the bare model).
        min_relevance: decline when the best passage's dense similarity is below this (``RagPipeline``'s and
            ``lorag ask --min-relevance``'s default); None turns the gate off.
        min_answerability: decline when lorag's answerability gate gives the passages less; None: 0.55
            (``DEFAULT_MIN_ANSWERABILITY``) when the answer comes from the grounded adapter, off otherwise, as in
            ``lorag ask``; 0 turns it off.
        answerability: the gate's coefficients; by default lorag's shipped ones.
        hops: searches per question; each one past the first adds the best new document of a search with the
            question and the document the previous one added, marked ``metadata["hop"]`` (``lorag.rag.hops``: for
            multi-hop questions try 2 with ``min_answerability=0``).
        hops_when_declined: searches made before the answerability gate's decline stands: documents it declines
            are searched this far and judged again (``lorag.rag.hops``).
        choices: answer a question that names two options ("..., A or B?") with the option a local ``ChatLorag``
            scores higher as its reply (``lorag.rag.choices``); other chat models, or False, always generate.
        chunks_per_file: with a lorag retriever, the question's search reads its ``k * chunks_per_file`` best
            documents and keeps those of the ``k`` files (``metadata["source"]``) they rank first, as ``lorag ask
            --chunks-per-file`` does (``lorag.rag.best_files``); 1 (the default), or another retriever: the
            retriever's own documents.

    The input is a question string or ``{"question": ...}``. Each source ``Document`` carries ``metadata["number"]``
    (its ``[n]`` in the prompt) and ``metadata["cited"]``. A declined question gets the answer "The documents do
    not contain the answer.", ``abstained: True``, no sources and ``declined``: which gate and why (``{"gate",
    "reason", "score"}``; None when the model was asked), without calling the model; the model's own such reply
    gets ``abstained: True`` and every source uncited. With the answerability gate on and a local ChatLorag,
    the gate alone decides, as in ``lorag ask``: the model answers with its no-answer reply forbidden. Streaming
    yields the answer in pieces that are final (loops are cut before they are shown), then ``sources``,
    ``abstained`` and ``declined``.

    Example:
        .. code-block:: python

            chain = create_rag_chain(LoragHybridRetriever.from_texts(texts), ChatLorag(quantization="nf4"))
            result = chain.invoke("How do I enable CORS?")
            result["answer"], [d.metadata["source"] for d in result["sources"] if d.metadata["cited"]]
    """
    check_hops(hops)
    check_hops(hops_when_declined, "hops_when_declined")
    check_chunks_per_file(chunks_per_file)
    count_tokens, window = _window_of(llm, context_window)
    grounded_adapter = False
    if grounded:
        llm, grounded_adapter = _with_grounded_adapter(llm)
    composition = RagComposition(
        count_tokens=count_tokens,
        context_window=window,
        max_new_tokens=max_new_tokens,
        system_prompt=system_prompt,
        min_relevance=min_relevance,
        min_answerability=resolve_min_answerability(min_answerability, grounded_adapter),
        answerability=answerability,
        statistics=retriever,
        question_gain=_local_question_gain(llm),
    )
    tokenizer = _local_tokenizer(llm)
    score = _local_scorer(llm) if choices else None

    def question_of(inputs: Any) -> str:
        question = inputs.get("question") if isinstance(inputs, dict) else inputs
        if not isinstance(question, str):
            raise TypeError(f"the chain takes a question string or {{'question': str}}, got {type(inputs).__name__}")
        return question

    def answer(inputs: dict[str, Any], config: RunnableConfig) -> Iterator[AddableDict]:
        documents: list[Document] = inputs["documents"]
        blocks = [_block(i, d) for i, d in enumerate(documents, start=1)]
        plan = composition.plan(inputs["question"], blocks)
        if second_look(plan.declined, hops, hops_when_declined):
            found = [d for d in documents if "hop" not in d.metadata]
            documents = [*found, *hopped(inputs["question"], found, hops_when_declined, config)]
            blocks = [_block(i, d) for i, d in enumerate(documents, start=1)]
            plan = composition.plan(inputs["question"], blocks)
        if plan.declined is not None:
            yield AddableDict(answer=NO_ANSWER)
            yield AddableDict(sources=[], abstained=True, declined=asdict(plan.declined))
            return
        text = choose(inputs["question"], plan.messages, plan.blocks, score) or ""
        if text:
            yield AddableDict(answer=text)
        else:
            options: dict[str, Any] = composition.generation_options(plan, tokenizer)
            chunks = llm.stream(convert_to_messages(plan.messages), config, **options)
            for piece in guarded((_text(c), _capped(c)) for c in chunks):
                text += piece
                yield AddableDict(answer=piece)
        outcome = composition.outcome(plan, text)
        if outcome.answer != text:
            yield AddableDict(answer=outcome.answer[len(text) :])
        original = {id(b): d for b, d in zip(blocks, documents, strict=True)}
        sources = [
            Document(
                b.text,
                id=original[id(b)].id,
                metadata={**original[id(b)].metadata, "source": b.source, "number": n, "cited": n in outcome.cited},
            )
            for n, b in enumerate(plan.blocks, start=1)
        ]
        yield AddableDict(sources=sources, abstained=outcome.abstained, declined=None)

    by_depth = isinstance(retriever, LoragRetriever)  # lorag's retrievers take k per call; others return their own

    def hopped(question: str, found: list[Document], searches: int, config: RunnableConfig) -> list[Document]:
        """The documents the follow-up searches of ``searches`` hops add to ``found``, marked with their hop."""
        added = follow_ups(
            question,
            found,
            lambda query, n: retriever.invoke(query, config, **({"k": n} if by_depth else {})),
            searches,
            key=lambda d: d.id or d.page_content,
            text=lambda d: d.page_content,
        )
        return [Document(d.page_content, id=d.id, metadata={**d.metadata, "hop": n}) for n, d in enumerate(added, 1)]

    def own_search(question: str, config: RunnableConfig) -> list[Document]:
        if not by_depth or chunks_per_file == 1:
            return retriever.invoke(question, config)
        k = cast(LoragRetriever, retriever).k
        ranked = retriever.invoke(question, config, k=k * chunks_per_file)
        return chunks_of_best_files(ranked, k, source=lambda d: d.metadata.get("source") or d.id or d.page_content)

    def with_follow_ups(question: str, config: RunnableConfig) -> list[Document]:
        found = own_search(question, config)
        return [*found, *hopped(question, found, hops, config)]

    ask = RunnableLambda(question_of, name="question")
    if hops > 1:
        search: Runnable[Any, list[Document]] = RunnableLambda(with_follow_ups, name="retrieve_with_follow_ups")
    elif by_depth and chunks_per_file > 1:
        search = RunnableLambda(own_search, name="retrieve_best_files")
    else:
        search = retriever
    respond = cast("Runnable[Any, dict[str, Any]]", RunnableLambda(answer, name="lorag_rag_answer"))
    return (RunnableParallel(question=ask, documents=ask | search) | respond).with_config(run_name="lorag_rag_chain")

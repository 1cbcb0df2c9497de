"""``LoragQueryEngine`` and ``create_query_engine``: any LlamaIndex retriever and LLM answering through lorag's RAG
composition, the one ``lorag ask`` and the LangChain chain use.

What it decides is ``lorag.rag.composition``'s: the relevance and answerability gates (a declined question is
answered "The documents do not contain the answer." without calling the LLM), lorag's cited prompt fitted to the
LLM's window in tokens (exactly for ``LoragLLM``: its tokenizer and chat template; by a 4-characters-per-token
estimate for other LLMs, within their ``metadata.context_window``), the loop guard on the answer, and citations. The
response's ``source_nodes`` are the nodes that fit the prompt, each with its ``number``, ``citation`` and ``cited``
in metadata; ``response.metadata`` says whether it ``abstained`` and, when a gate ``declined``, which and why. A
``LoragLLM`` over SmolLM2-135M-Instruct with no adapter chosen answers with lorag's shipped grounded-answer adapter
and then, as ``lorag ask`` does, with the answerability gate on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import PurePath
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.llms import LLM, ChatMessage
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index.llms.lorag import LoragLLM
from lorag.rag.answerability import AnswerabilityGate
from lorag.rag.best_files import DEFAULT_CHUNKS_PER_FILE, check_chunks_per_file, chunks_of_best_files
from lorag.rag.choices import ScoreReplies, choose, reply_scorer
from lorag.rag.composition import (
    DEFAULT_MIN_RELEVANCE,
    Plan,
    RagComposition,
    chat_token_counter,
    dense_relevance,
    estimate_tokens,
    guarded,
    resolve_min_answerability,
)
from lorag.rag.grounded import use_grounded_adapter
from lorag.rag.hops import DEFAULT_HOPS, DEFAULT_HOPS_WHEN_DECLINED, check_hops, follow_ups, second_look
from lorag.rag.prompt import SYSTEM_PROMPT, ContextBlock
from lorag.rag.question_gain import QuestionGain

#: Metadata the LLM sees for each node; everything else (offsets, scores) stays out of the prompt.
_LLM_KEYS = ("citation",)


def source_label(metadata: Mapping[str, Any]) -> str:
    """Where a passage comes from, as lorag's core prompt writes it (``cors.md > CORS > Use CORSMiddleware``).

    lorag's loaders set ``source``/``section``; LlamaIndex readers set ``file_name``/``file_path`` (web readers
    ``url``) and node parsers ``header_path`` (lorag's with " > ", LlamaIndex's markdown parser as ``/A/B/``). A node
    id is never a label: the model would quote it in its answer.
    """
    file_path = metadata.get("file_path")
    source = (
        metadata.get("source")
        or metadata.get("file_name")
        or (PurePath(str(file_path)).name if file_path else None)
        or metadata.get("url")
    )
    section = metadata.get("section") or metadata.get("header_path")
    if isinstance(section, str) and section.startswith("/"):
        section = " > ".join(part for part in section.split("/") if part)
    block = ContextBlock("", str(source or ""), metadata={"section": section, "page": metadata.get("page")})
    return block.label().removeprefix(" > ")


class NumberedSources(BaseNodePostprocessor):
    """Number nodes ``[1]``, ``[2]``... with their source (``source_label``), as lorag's core prompt does; the node's
    LLM view becomes that citation line and its text."""

    @classmethod
    def class_name(cls) -> str:
        return "LoragNumberedSources"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        for number, item in enumerate(nodes, start=1):
            node = item.node
            label = source_label(node.metadata)
            node.metadata["number"] = number
            node.metadata["citation"] = f"[{number}] {label}".rstrip()
            node.excluded_llm_metadata_keys = [k for k in node.metadata if k not in _LLM_KEYS]
            node.metadata_template = "{value}"
            node.metadata_separator = "\n"
            node.text_template = "{metadata_str}\n{content}"  # type: ignore[attr-defined]  # TextNode's field
        return nodes


def _block(item: NodeWithScore) -> ContextBlock:
    """A node as a prompt block labelled ``source_label``; its ``relevance`` is the dense cosine lorag's hybrid
    retriever recorded (``metadata["lorag"]``), None for other retrievers' nodes and for a follow-up search's
    (``metadata["hop"]`` > 0), whose scores are for another query."""
    metadata = item.node.metadata
    relevance = None if metadata.get("hop") else dense_relevance(metadata)
    return ContextBlock(item.node.get_content(), source_label(metadata), item.score or 0.0, {"relevance": relevance})


def _capped(raw: Any) -> bool:
    """Whether the LLM's raw response says generation stopped at the token cap (``LoragLLM``'s does)."""
    return isinstance(raw, Mapping) and raw.get("finish_reason") == "length"


class LoragQueryEngine(BaseQueryEngine):
    """Retrieve, then answer through a ``RagComposition`` (``create_query_engine`` builds one with lorag's defaults).

    Args:
        retriever: any LlamaIndex retriever.
        llm: any LlamaIndex LLM; called with ``chat``, or ``stream_chat`` when ``streaming``.
        composition: the gates, window and prompt (``lorag.rag.composition.RagComposition``).
        node_postprocessors: applied to the retrieved nodes, in order, before the gates and the prompt.
        streaming: return a ``StreamingResponse`` whose text arrives in pieces that are final (loops are cut
            before they are shown); ``cited`` and ``abstained`` are set once it is read to the end.
        hops: retrievals per query; each one past the first adds the best new node of a retrieval with the query and
            the node the previous one added, marked ``metadata["hop"]`` (``lorag.rag.hops``: for multi-hop questions);
            the post-processors see the query's own nodes only.
        hops_when_declined: retrievals made before the answerability gate's decline stands: nodes it declines are
            searched this far and judged again (``lorag.rag.hops``).
        choices: answer a query that names two options ("..., A or B?") with the option a local ``LoragLLM``
            scores higher as its reply (``lorag.rag.choices``); other LLMs, or False, always generate.
        chunks_per_file: with a lorag retriever, the query's own retrieval reads its ``similarity_top_k *
            chunks_per_file`` best nodes and keeps those of the ``similarity_top_k`` files (``metadata["source"]``)
            they rank first, as ``lorag ask --chunks-per-file`` does (``lorag.rag.best_files``; lorag's retriever's
            ``retrieve_top`` is called directly then); 1 (the default), or another retriever: its own nodes.
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: LLM,
        composition: RagComposition,
        *,
        node_postprocessors: Sequence[BaseNodePostprocessor] = (),
        streaming: bool = False,
        callback_manager: CallbackManager | None = None,
        hops: int = DEFAULT_HOPS,
        hops_when_declined: int = DEFAULT_HOPS_WHEN_DECLINED,
        choices: bool = True,
        chunks_per_file: int = DEFAULT_CHUNKS_PER_FILE,
    ) -> None:
        self.retriever = retriever
        self.chunks_per_file = check_chunks_per_file(chunks_per_file)
        self.hops = check_hops(hops)
        self.hops_when_declined = check_hops(hops_when_declined, "hops_when_declined")
        self.llm = llm
        self.composition = composition
        self.node_postprocessors = list(node_postprocessors)
        self.streaming = streaming
        self.choices = choices
        super().__init__(callback_manager=callback_manager or CallbackManager([]))

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The retriever's nodes (of its best files, ``chunks_per_file``) after the post-processors (before the gates
        and the window)."""
        top = getattr(self.retriever, "retrieve_top", None)
        k = getattr(self.retriever, "similarity_top_k", None)
        if self.chunks_per_file > 1 and callable(top) and isinstance(k, int):
            ranked = top(query_bundle.query_str, k * self.chunks_per_file)
            nodes = chunks_of_best_files(ranked, k, source=lambda n: n.node.metadata.get("source") or n.node.node_id)
        else:
            nodes = self.retriever.retrieve(query_bundle)
        for postprocessor in self.node_postprocessors:
            nodes = postprocessor.postprocess_nodes(nodes, query_bundle=query_bundle)
        return nodes

    def _search(self, query: str, k: int) -> list[NodeWithScore]:
        """A follow-up retrieval: lorag's retrievers return the top ``k``, others their own number of nodes."""
        top = getattr(self.retriever, "retrieve_top", None)
        return top(query, k) if callable(top) else self.retriever.retrieve(QueryBundle(query))

    def _hopped(self, query: str, found: list[NodeWithScore], hops: int) -> list[NodeWithScore]:
        """The nodes the follow-up retrievals of ``hops`` hops add to ``found``, marked with their hop."""
        added = follow_ups(
            query, found, self._search, hops, key=lambda n: n.node.node_id, text=lambda n: n.node.get_content()
        )
        for hop, item in enumerate(added, start=1):
            item.node.metadata["hop"] = hop  # marked as NumberedSources marks numbers, on the node
        return added

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        with self.callback_manager.event(
            CBEventType.QUERY, payload={EventPayload.QUERY_STR: query_bundle.query_str}
        ) as event:
            found = self.retrieve(query_bundle)
            nodes = [*found, *self._hopped(query_bundle.query_str, found, self.hops)]
            blocks = [_block(n) for n in nodes]
            plan = self.composition.plan(query_bundle.query_str, blocks)
            if second_look(plan.declined, self.hops, self.hops_when_declined):
                nodes = [*found, *self._hopped(query_bundle.query_str, found, self.hops_when_declined)]
                blocks = [_block(n) for n in nodes]
                plan = self.composition.plan(query_bundle.query_str, blocks)
            by_block = {id(b): n for b, n in zip(blocks, nodes, strict=True)}
            sources = NumberedSources().postprocess_nodes([by_block[id(b)] for b in plan.blocks])
            metadata: dict[str, Any] = {"abstained": plan.declined is not None, "declined": None}
            if plan.declined is not None:
                metadata["declined"] = asdict(plan.declined)
                sources = []
            pieces = self._answer(query_bundle.query_str, plan, sources, metadata)
            response: RESPONSE_TYPE
            if self.streaming:
                response = StreamingResponse(response_gen=pieces, source_nodes=sources, metadata=metadata)
            else:
                response = Response("".join(pieces), source_nodes=sources, metadata=metadata)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return await asyncio.to_thread(self._query, query_bundle)

    def _scorer(self) -> ScoreReplies | None:
        """Scores replies for choice questions with a local ``LoragLLM`` (``lorag.rag.choices``)."""
        if not self.choices or not isinstance(self.llm, LoragLLM):
            return None
        return reply_scorer(self.llm.engine, self.llm.adapter)

    def _deltas(self, plan: Plan) -> Iterable[tuple[str, bool]]:
        messages = [ChatMessage(role=m["role"], content=m["content"]) for m in plan.messages]
        options = self.composition.generation_options(plan, _local_tokenizer(self.llm))
        if not self.streaming:
            reply = self.llm.chat(messages, **options)
            return [(reply.message.content or "", _capped(reply.raw))]
        return ((chunk.delta or "", _capped(chunk.raw)) for chunk in self.llm.stream_chat(messages, **options))

    def _answer(
        self, query: str, plan: Plan, sources: list[NodeWithScore], metadata: dict[str, Any]
    ) -> Generator[str, None, None]:
        """The answer's final pieces (a choice question's chosen option, else what the model generates); then marks
        the cited sources and whether it abstained."""
        text = ""
        if plan.declined is None and (text := choose(query, plan.messages, plan.blocks, self._scorer()) or ""):
            yield text
        elif plan.declined is None:
            for piece in guarded(self._deltas(plan)):
                text += piece
                yield piece
        outcome = self.composition.outcome(plan, text)
        if outcome.answer != text:
            yield outcome.answer[len(text) :]
        for item in sources:
            item.node.metadata["cited"] = item.node.metadata["number"] in outcome.cited
        metadata["abstained"] = outcome.abstained


def _local_tokenizer(llm: LLM) -> Any:
    """The tokenizer of a ``LoragLLM`` on a local engine, else None."""
    tokenizer = getattr(llm.engine, "tokenizer", None) if isinstance(llm, LoragLLM) else None
    return tokenizer if hasattr(tokenizer, "apply_chat_template") else None


def _window(llm: LLM, context_window: int | None, max_new_tokens: int | None) -> dict[str, Any]:
    """Token counting, window and answer room: exact for a local ``LoragLLM``, estimated from ``llm.metadata``."""
    info = llm.metadata
    room = max_new_tokens or (info.num_output if info.num_output > 0 else 160)
    tokenizer = _local_tokenizer(llm)
    count = chat_token_counter(tokenizer) if tokenizer is not None else estimate_tokens
    return {"count_tokens": count, "context_window": context_window or info.context_window, "max_new_tokens": room}


def create_query_engine(
    retriever: BaseRetriever,
    llm: LLM,
    *,
    grounded: bool = True,
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE,
    min_answerability: float | None = None,
    answerability: AnswerabilityGate | None = None,
    context_window: int | None = None,
    max_new_tokens: int | None = None,
    system_prompt: str = SYSTEM_PROMPT,
    node_postprocessors: Sequence[BaseNodePostprocessor] = (),
    streaming: bool = False,
    callback_manager: CallbackManager | None = None,
    hops: int = DEFAULT_HOPS,
    hops_when_declined: int = DEFAULT_HOPS_WHEN_DECLINED,
    choices: bool = True,
    chunks_per_file: int = DEFAULT_CHUNKS_PER_FILE,
) -> LoragQueryEngine:
    """A query engine over ``retriever`` answering with ``llm``, citing numbered sources, declining below the gates.

    Args:
        retriever: any LlamaIndex retriever. ``LoragHybridRetriever`` works best: its nodes carry the dense
            similarity the gates read, and its index the term statistics and embedder of the answerability gate.
            With a retriever whose nodes have no dense score (``LoragBM25Retriever``, a foreign one) both gates are
            skipped; with a foreign hybrid, see ``lorag.rag.composition.gate_statistics``.
        llm: any LlamaIndex LLM (``LoragLLM`` counts the prompt's tokens exactly).
        grounded: answer with lorag's grounded-answer adapter when ``llm`` is a ``LoragLLM`` over the model it was
            trained for and has no adapter (``False``: the bare model).
        min_relevance: decline when the best node's dense similarity is below this (``RagPipeline``'s and
            ``lorag ask --min-relevance``'s default); None turns the gate off.
        min_answerability: decline when lorag's answerability gate gives the nodes less; None: 0.55
            (``DEFAULT_MIN_ANSWERABILITY``) when the answer comes from the grounded adapter, off otherwise, as in
            ``lorag ask``; 0 turns it off.
        answerability: the gate's coefficients; by default lorag's shipped ones.
        context_window: the LLM's window in tokens; ``llm.metadata.context_window`` unless given.
        max_new_tokens: room kept for the answer; ``llm.metadata.num_output`` (160 when it has none) unless given.
        system_prompt: the instruction; the default asks for ``[n]`` citations and an explicit "not in context".
        node_postprocessors: applied to the retrieved nodes before the gates and the prompt.
        streaming: ``query`` returns a ``StreamingResponse``.
        callback_manager: LlamaIndex callbacks for the query.
        hops: retrievals per query (``lorag.rag.hops``): the query's own and one follow-up by default; 1: its own only.
        hops_when_declined: retrievals made before the answerability gate's decline stands (``lorag.rag.hops``).
        choices: answer a query that names two options with the option a local ``LoragLLM`` scores higher
            (``lorag.rag.choices``); False always generates.
        chunks_per_file: the query's own retrieval keeps the nodes of its best files (``LoragQueryEngine``).

    With the answerability gate on and a local ``LoragLLM``, the gate alone decides, as in ``lorag ask``: the model
    answers with its no-answer reply forbidden. Without ``streaming`` a looping answer is cut once the LLM has
    returned it.
    """
    grounded_adapter = False
    if grounded and isinstance(llm, LoragLLM) and llm.adapter is None:
        name = use_grounded_adapter(llm.engine)
        if name is not None:
            llm, grounded_adapter = llm.with_adapter(name), True
    composition = RagComposition(
        **_window(llm, context_window, max_new_tokens),
        system_prompt=system_prompt,
        min_relevance=min_relevance,
        min_answerability=resolve_min_answerability(min_answerability, grounded_adapter),
        answerability=answerability,
        statistics=retriever,
        question_gain=QuestionGain.of_engine(llm.engine) if isinstance(llm, LoragLLM) else None,
    )
    return LoragQueryEngine(
        retriever,
        llm,
        composition,
        node_postprocessors=node_postprocessors,
        streaming=streaming,
        callback_manager=callback_manager,
        hops=hops,
        hops_when_declined=hops_when_declined,
        choices=choices,
        chunks_per_file=chunks_per_file,
    )

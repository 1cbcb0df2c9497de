"""``create_rag_chain``: an LCEL chain (retriever | cited prompt | chat model | parser) that returns the answer
and the numbered sources it was given, each marked ``cited`` when the answer cites its number.

The prompt is lorag's core RAG prompt (``lorag.rag.prompt``), fitted to the chat model's context window in tokens:
exactly for ``ChatLorag`` (its tokenizer and chat template), by a 4-characters-per-token estimate for other models.
A ``ChatLorag`` over SmolLM2-135M-Instruct with no adapter chosen answers with lorag's shipped grounded-answer
adapter (``lorag.rag.grounded``), as ``lorag ask`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import convert_to_messages
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel

from lorag.rag.grounded import use_grounded_adapter
from lorag.rag.pipeline import chat_token_counter
from lorag.rag.prompt import SYSTEM_PROMPT, ContextBlock, build_prompt, cited_numbers

CountTokens = Callable[[list[dict[str, str]]], int]


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) // 4 + 4 for m in messages)


def _unwrap(llm: Runnable[Any, Any]) -> tuple[Any, bool]:
    """The model under ``.bind``/``configurable_fields``, and whether a binding already names an adapter."""
    target: Any = llm
    adapter_bound = False
    while hasattr(target, "bound") or hasattr(target, "default"):
        adapter_bound = adapter_bound or "adapter" in (getattr(target, "kwargs", None) or {})
        target = getattr(target, "bound", None) or target.default
    return target, adapter_bound


def _with_grounded_adapter(llm: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """Bind the shipped grounded-answer adapter to a ChatLorag over its base when no adapter was chosen."""
    target, adapter_bound = _unwrap(llm)
    if adapter_bound or not hasattr(target, "get_engine") or getattr(target, "adapter", None) is not None:
        return llm
    name = use_grounded_adapter(target.get_engine())
    return llm if name is None else llm.bind(adapter=name)


def _window_of(llm: Runnable[Any, Any], context_window: int | None) -> tuple[CountTokens, int]:
    """Exact counting for ChatLorag (also through ``.bind``/``configurable_fields``), an estimate otherwise."""
    target, _ = _unwrap(llm)
    if hasattr(target, "get_engine"):
        engine = target.get_engine()
        return chat_token_counter(engine.tokenizer), context_window or engine.context_window
    return _estimate_tokens, context_window or 4096


def create_rag_chain(
    retriever: BaseRetriever,
    llm: BaseChatModel | Runnable[Any, Any],
    *,
    context_window: int | None = None,
    max_new_tokens: int = 160,
    system_prompt: str = SYSTEM_PROMPT,
    grounded: bool = True,
) -> Runnable[Any, dict[str, Any]]:
    """Build ``question -> {"answer": str, "sources": [Document]}`` from any retriever and chat model.

    Args:
        retriever: any LangChain retriever (``LoragHybridRetriever`` works best with lorag's chunk metadata).
        llm: any chat model or runnable over messages (``ChatLorag``, also bound to an adapter).
        context_window: the model's window in tokens; read from ``ChatLorag``, else 4096 unless given.
        max_new_tokens: room kept for the answer.
        system_prompt: the instruction; the default asks for ``[n]`` citations and an explicit "not in context".
        grounded: answer with lorag's grounded-answer adapter when ``llm`` is a ``ChatLorag`` over the model it was
            trained for and no adapter is chosen (``False``: the bare model).

    The input is a question string or ``{"question": ...}``. Each source ``Document`` carries ``metadata["number"]``
    (its ``[n]`` in the prompt) and ``metadata["cited"]``.

    Example:
        .. code-block:: python

            chain = create_rag_chain(LoragHybridRetriever.from_texts(texts), ChatLorag(quantization="nf4"))
            result = chain.invoke("How do I enable CORS?")
            result["answer"], [d.metadata["source"] for d in result["sources"] if d.metadata["cited"]]
    """
    count_tokens, window = _window_of(llm, context_window)
    if grounded:
        llm = _with_grounded_adapter(llm)

    def question_of(inputs: Any) -> str:
        question = inputs.get("question") if isinstance(inputs, dict) else inputs
        if not isinstance(question, str):
            raise TypeError(f"the chain takes a question string or {{'question': str}}, got {type(inputs).__name__}")
        return question

    def prompt(inputs: dict[str, Any]) -> dict[str, Any]:
        documents: list[Document] = inputs["documents"]
        blocks = [
            ContextBlock(
                d.page_content,
                str(d.metadata.get("source") or d.id or f"document {i}"),
                float(d.metadata.get("score", 0.0)),
                dict(d.metadata),
            )
            for i, d in enumerate(documents, start=1)
        ]
        built = build_prompt(
            inputs["question"],
            blocks,
            count_tokens=count_tokens,
            context_window=window,
            max_new_tokens=max_new_tokens,
            system_prompt=system_prompt,
        )
        sources = [
            Document(b.text, metadata={**b.metadata, "source": b.source, "number": n})
            for n, b in enumerate(built.blocks, start=1)
        ]
        return {"messages": convert_to_messages(built.messages), "sources": sources}

    def mark_cited(result: dict[str, Any]) -> dict[str, Any]:
        cited = set(cited_numbers(result["answer"], len(result["sources"])))
        for doc in result["sources"]:
            doc.metadata["cited"] = doc.metadata["number"] in cited
        return result

    ask = RunnableLambda(question_of, name="question")
    return (
        RunnableParallel(question=ask, documents=ask | retriever)
        | RunnableLambda(prompt, name="lorag_rag_prompt")
        | RunnableParallel(answer=itemgetter("messages") | llm | StrOutputParser(), sources=itemgetter("sources"))
        | RunnableLambda(mark_cited, name="mark_cited")
    ).with_config(run_name="lorag_rag_chain")

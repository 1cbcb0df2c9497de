"""``create_query_engine``: a lorag retriever and LLM in a LlamaIndex ``RetrieverQueryEngine``, with lorag's
cited RAG prompt (the same system and user messages as ``lorag.rag.prompt``) and numbered sources; the response's
``source_nodes`` carry each number in metadata. A ``LoragLLM`` over SmolLM2-135M-Instruct with no adapter chosen
answers with lorag's shipped grounded-answer adapter, as ``lorag ask`` does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from llama_index.core import ChatPromptTemplate
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import LLM, ChatMessage, MessageRole
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index.llms.lorag import LoragLLM
from lorag.rag.grounded import use_grounded_adapter
from lorag.rag.prompt import SYSTEM_PROMPT, ContextBlock

#: lorag's RAG prompt as LlamaIndex messages: the context is the numbered nodes, formatted as ``format_block`` does.
QA_TEMPLATE = ChatPromptTemplate(
    [
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
        ChatMessage(role=MessageRole.USER, content="Context:\n{context_str}\n\nQuestion: {query_str}"),
    ]
)

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
    """Number the retrieved nodes ``[1]``, ``[2]``... with their source (``source_label``), as lorag's core prompt
    does."""

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


def create_query_engine(
    retriever: BaseRetriever, llm: LLM, *, grounded: bool = True, **kwargs: Any
) -> RetrieverQueryEngine:
    """A ``RetrieverQueryEngine`` over ``retriever`` answering with ``llm`` and citing numbered sources.

    ``grounded``: answer with lorag's grounded-answer adapter when ``llm`` is a ``LoragLLM`` over the model it was
    trained for and has no adapter (``False``: the bare model). ``kwargs`` go to
    ``RetrieverQueryEngine.from_args`` (e.g. ``response_mode``, ``streaming``).
    """
    kwargs.setdefault("response_mode", "compact")
    if grounded and isinstance(llm, LoragLLM) and llm.adapter is None:
        name = use_grounded_adapter(llm.engine)
        if name is not None:
            llm = llm.with_adapter(name)
    return RetrieverQueryEngine.from_args(
        retriever,
        llm=llm,
        text_qa_template=QA_TEMPLATE,
        node_postprocessors=[NumberedSources(), *kwargs.pop("node_postprocessors", [])],
        **kwargs,
    )

"""``create_query_engine``: a lorag retriever and LLM in a LlamaIndex ``RetrieverQueryEngine``, with lorag's
cited RAG instruction and numbered sources; the response's ``source_nodes`` carry each number in metadata."""

from __future__ import annotations

from typing import Any

from llama_index.core import PromptTemplate
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle

from lorag.rag.prompt import SYSTEM_PROMPT

QA_TEMPLATE = SYSTEM_PROMPT + "\n\nContext:\n{context_str}\n\nQuestion: {query_str}\nAnswer: "

#: Metadata the LLM sees for each node; everything else (offsets, scores) stays out of the prompt.
_LLM_KEYS = ("citation",)


class NumberedSources(BaseNodePostprocessor):
    """Number the retrieved nodes ``[1]``, ``[2]``... with their source, as lorag's core prompt does."""

    @classmethod
    def class_name(cls) -> str:
        return "LoragNumberedSources"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        for number, item in enumerate(nodes, start=1):
            node = item.node
            source = node.metadata.get("source", node.node_id)
            section = node.metadata.get("section")
            node.metadata["number"] = number
            node.metadata["citation"] = f"[{number}] {source}" + (f" > {section}" if section else "")
            node.excluded_llm_metadata_keys = [k for k in node.metadata if k not in _LLM_KEYS]
            node.metadata_template = "{value}"
            node.metadata_separator = "\n"
            node.text_template = "{metadata_str}\n{content}"  # type: ignore[attr-defined]  # TextNode's field
        return nodes


def create_query_engine(retriever: BaseRetriever, llm: LLM, **kwargs: Any) -> RetrieverQueryEngine:
    """A ``RetrieverQueryEngine`` over ``retriever`` answering with ``llm`` and citing numbered sources.

    ``kwargs`` go to ``RetrieverQueryEngine.from_args`` (e.g. ``response_mode``, ``streaming``).
    """
    kwargs.setdefault("response_mode", "compact")
    return RetrieverQueryEngine.from_args(
        retriever,
        llm=llm,
        text_qa_template=PromptTemplate(QA_TEMPLATE),
        node_postprocessors=[NumberedSources(), *kwargs.pop("node_postprocessors", [])],
        **kwargs,
    )

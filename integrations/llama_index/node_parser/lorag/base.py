"""``LoragNodeParser``: lorag's splitters as a native LlamaIndex node parser with exact character offsets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.node_parser.interface import NodeParser
from llama_index.core.schema import BaseNode, Document, MetadataMode, NodeRelationship, TextNode
from llama_index.core.utils import get_tqdm_iterable

from lorag.chunking import Splitter, make_splitter

OFFSET_KEYS = ("start_char_idx", "end_char_idx")
_METADATA_SEPARATOR_LEN = 2  # the "\n\n" LlamaIndex puts between metadata and text


class LoragNodeParser(NodeParser):
    """Split documents or nodes into ``TextNode``s with any lorag chunking method.

    Metadata-aware: the metadata text that LlamaIndex prepends for embedding or the LLM is subtracted from
    ``chunk_size``, so metadata plus chunk still fit. Each node's ``start_char_idx``/``end_char_idx`` (also in
    its metadata, excluded from embedding and LLM text) are exact offsets into the parent's text.

    Args:
        method: ``recursive``, ``token``, ``sentence``, ``markdown`` or ``semantic``.
        chunk_size: maximum chunk length; default 256 tokens with a tokenizer, else 1000 characters.
        chunk_overlap: maximum length repeated between consecutive chunks; default ``chunk_size // 8``.
        tokenizer: ``None`` (characters), a model reference such as ``"minilm"``, or a ``transformers`` tokenizer.
        embedder: for ``semantic``: a lorag ``Embedder``, a LlamaIndex ``BaseEmbedding`` or a callable.
        splitter_kwargs: the method's other options (``preset``, ``threshold``, ``min_chunk_size``, ...).
    """

    method: str = Field(default="recursive", description="lorag chunking method.")
    chunk_size: int | None = Field(default=None, gt=0, description="Maximum chunk length (characters or tokens).")
    chunk_overlap: int | None = Field(
        default=None, ge=0, description="Maximum length repeated between chunks; default chunk_size // 8."
    )
    tokenizer: str | None = Field(
        default=None, description="Model reference whose tokens measure length; None measures characters."
    )
    splitter_kwargs: dict[str, Any] = Field(default_factory=dict, description="Method options for make_splitter.")

    _tokenizer: Any = PrivateAttr(default=None)
    _embedder: Any = PrivateAttr(default=None)
    _splitters: dict[int, Splitter] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        method: str = "recursive",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        tokenizer: Any = None,
        *,
        embedder: Any = None,
        splitter_kwargs: dict[str, Any] | None = None,
        include_metadata: bool = True,
        include_prev_next_rel: bool = True,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        options = dict(splitter_kwargs or {})
        super().__init__(  # type: ignore[call-arg]  # pydantic fields, which mypy cannot see without the plugin
            method=method,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            tokenizer=tokenizer if tokenizer is None or isinstance(tokenizer, str) else None,
            splitter_kwargs=options,
            include_metadata=include_metadata,
            include_prev_next_rel=include_prev_next_rel,
            callback_manager=callback_manager or CallbackManager([]),
            **kwargs,
        )
        self._tokenizer = tokenizer
        self._embedder = embedder
        full = self._build(chunk_size)  # validates every argument now, not at the first document
        self._splitters[full.chunk_size] = full

    @classmethod
    def from_defaults(cls, **kwargs: Any) -> LoragNodeParser:
        return cls(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "LoragNodeParser"

    @property
    def splitter(self) -> Splitter:
        """The splitter at the full ``chunk_size`` (documents without metadata)."""
        return next(iter(self._splitters.values()))

    def _build(self, chunk_size: int | None) -> Splitter:
        options = dict(self.splitter_kwargs)
        if self._embedder is not None:
            options["embedder"] = self._embedder
        overlap = self.chunk_overlap
        if overlap is not None and chunk_size is not None:
            overlap = min(overlap, chunk_size - 1)
        return make_splitter(self.method, chunk_size, overlap, self._tokenizer, **options)

    def _splitter_for(self, node: BaseNode) -> Splitter:
        full = self.splitter
        metadata = max(
            node.get_metadata_str(mode=MetadataMode.EMBED), node.get_metadata_str(mode=MetadataMode.LLM), key=len
        )
        if not metadata:
            return full
        budget = full.chunk_size - full.length(metadata) - _METADATA_SEPARATOR_LEN
        if budget <= 0:
            raise ValueError(
                f"the metadata of node {node.node_id} takes {full.length(metadata)} of chunk_size "
                f"{full.chunk_size} {full.length.unit}; raise chunk_size or exclude metadata keys"
            )
        if budget not in self._splitters:
            self._splitters[budget] = self._build(budget)
        return self._splitters[budget]

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Parsing nodes"):
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            relationships = {NodeRelationship.SOURCE: node.as_related_node_info()}
            for chunk in self._splitter_for(node).split(text):
                offsets = dict(zip(OFFSET_KEYS, (chunk.start, chunk.end), strict=True))
                child = TextNode(
                    id_=self.id_func(chunk.index, node),
                    text=chunk.text,
                    metadata={**chunk.metadata, **offsets},
                    excluded_embed_metadata_keys=[*node.excluded_embed_metadata_keys, *OFFSET_KEYS],
                    excluded_llm_metadata_keys=[*node.excluded_llm_metadata_keys, *OFFSET_KEYS],
                    metadata_seperator=node.metadata_separator,
                    metadata_template=node.metadata_template,
                    text_template=node.text_template,
                    relationships=relationships,
                    start_char_idx=chunk.start,
                    end_char_idx=chunk.end,
                )
                out.append(child)
        return out

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        # The base class re-derives offsets with str.find, which lands on the wrong copy of a repeated passage;
        # put the splitter's exact offsets back.
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node in nodes:
            if isinstance(node, TextNode) and OFFSET_KEYS[0] in node.metadata:
                node.start_char_idx = node.metadata[OFFSET_KEYS[0]]
                node.end_char_idx = node.metadata[OFFSET_KEYS[1]]
        return nodes

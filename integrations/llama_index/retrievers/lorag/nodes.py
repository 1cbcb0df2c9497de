"""Indexed LlamaIndex nodes come back as themselves: id, ``ref_doc_id``, relationships, excluded keys and templates.

lorag's indexes keep text and JSON metadata per document, so the rest of a node rides in its metadata under
``NODE_KEY`` (saved with the index) and is taken out again when the node is rebuilt. Without it a query engine could
not tell which document a passage came from, and ``delete_ref_doc`` or node post-processors that follow
relationships would find nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.schema import BaseNode, TextNode

#: Metadata key holding the node fields lorag's indexes do not keep themselves.
NODE_KEY = "_lorag_node"

#: ``TextNode`` fields carried in ``NODE_KEY``: everything but the id, text, metadata and embedding.
_CARRIED = frozenset(TextNode.model_fields) - {"id_", "text", "text_resource", "metadata", "embedding"}


def split_nodes(nodes: Sequence[BaseNode]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Texts, ids and metadata to index, each node's other fields under ``NODE_KEY``."""
    metadatas = []
    for node in nodes:
        carried = node.model_dump(mode="json", include=set(_CARRIED & set(type(node).model_fields)))
        metadatas.append({**node.metadata, NODE_KEY: carried})
    return [n.get_content() for n in nodes], [n.node_id for n in nodes], metadatas


def restore_node(doc_id: str, text: str, metadata: Mapping[str, Any]) -> TextNode:
    """The indexed node (a plain ``TextNode`` for texts indexed without one)."""
    meta = dict(metadata)
    carried = meta.pop(NODE_KEY, None) or {}
    return TextNode.model_validate({**carried, "id_": doc_id, "text": text, "metadata": meta})

"""lorag's LlamaIndex node_parser integration (``llama_index.node_parser.lorag``)."""

from llama_index.node_parser.lorag.base import LoragNodeParser

__all__: list[str] = ["LoragNodeParser"]

"""lorag's LlamaIndex embeddings integration (``llama_index.embeddings.lorag``)."""

from llama_index.embeddings.lorag.base import LoragEmbedding

__all__ = ["LoragEmbedding"]

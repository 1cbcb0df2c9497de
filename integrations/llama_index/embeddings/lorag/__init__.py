"""lorag's LlamaIndex embeddings integration (``llama_index.embeddings.lorag``)."""

__all__: list[str] = []

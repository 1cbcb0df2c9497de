"""lorag's LlamaIndex retrievers integration (``llama_index.retrievers.lorag``)."""

__all__: list[str] = []

"""lorag's LlamaIndex llms integration (``llama_index.llms.lorag``)."""

__all__: list[str] = []

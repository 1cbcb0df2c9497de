"""lorag's LlamaIndex node_parser integration (``llama_index.node_parser.lorag``)."""

__all__: list[str] = []

"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

__all__: list[str] = []

"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

from langchain_lorag.text_splitters import LoragTextSplitter

__all__: list[str] = ["LoragTextSplitter"]

"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

from langchain_lorag.embeddings import LoragEmbeddings

__all__ = ["LoragEmbeddings"]

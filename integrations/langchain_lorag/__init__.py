"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

from langchain_lorag.retrievers import LoragBM25Retriever, LoragHybridRetriever
from langchain_lorag.text_splitters import LoragTextSplitter
from langchain_lorag.vectorstores import LangChainVectorStoreBackend

__all__ = ["LangChainVectorStoreBackend", "LoragBM25Retriever", "LoragHybridRetriever", "LoragTextSplitter"]

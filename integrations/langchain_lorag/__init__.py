"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

from langchain_lorag.chat_models import ChatLorag
from langchain_lorag.embeddings import LoragEmbeddings
from langchain_lorag.llms import LoragLLM
from langchain_lorag.rag import create_rag_chain
from langchain_lorag.retrievers import LoragBM25Retriever, LoragHybridRetriever, LoragTfidfRetriever
from langchain_lorag.text_splitters import LoragTextSplitter
from langchain_lorag.vectorstores import LangChainVectorStoreBackend

__all__ = [
    "ChatLorag",
    "LangChainVectorStoreBackend",
    "LoragBM25Retriever",
    "LoragEmbeddings",
    "LoragHybridRetriever",
    "LoragLLM",
    "LoragTextSplitter",
    "LoragTfidfRetriever",
    "create_rag_chain",
]

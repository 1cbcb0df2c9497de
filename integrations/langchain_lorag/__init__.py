"""lorag's LangChain partner package: native retrievers, splitters, embeddings and chat models."""

from langchain_lorag.chat_models import ChatLorag
from langchain_lorag.llms import LoragLLM

__all__: list[str] = ["ChatLorag", "LoragLLM"]

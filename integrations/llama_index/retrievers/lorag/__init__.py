"""lorag retrievers for LlamaIndex: BM25, TF-IDF and hybrid (BM25 or TF-IDF + dense, fused), returning
``NodeWithScore``."""

from llama_index.retrievers.lorag.base import LoragBM25Retriever, LoragHybridRetriever, LoragTfidfRetriever
from llama_index.retrievers.lorag.query_engine import NumberedSources, create_query_engine
from llama_index.retrievers.lorag.vector_store import LlamaIndexVectorStoreBackend

__all__ = [
    "LlamaIndexVectorStoreBackend",
    "LoragBM25Retriever",
    "LoragHybridRetriever",
    "LoragTfidfRetriever",
    "NumberedSources",
    "create_query_engine",
]

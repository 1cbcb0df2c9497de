"""lorag retrievers for LlamaIndex: BM25 and hybrid (BM25 + dense, fused), returning ``NodeWithScore``."""

from llama_index.retrievers.lorag.base import LoragBM25Retriever, LoragHybridRetriever
from llama_index.retrievers.lorag.query_engine import NumberedSources, create_query_engine
from llama_index.retrievers.lorag.vector_store import LlamaIndexVectorStoreBackend

__all__ = [
    "LlamaIndexVectorStoreBackend",
    "LoragBM25Retriever",
    "LoragHybridRetriever",
    "NumberedSources",
    "create_query_engine",
]

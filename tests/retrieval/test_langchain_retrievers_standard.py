"""langchain-tests' standard retriever suite, run on both lorag LangChain retrievers with no xfail."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_lorag import LoragBM25Retriever, LoragHybridRetriever
from lorag.embedding import Embedder
from lorag.retrieval import BM25Index, HybridRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS
from tiny_models import build_tiny_sentence_transformer

# "fox" (stemmed) appears in four documents, so BM25 alone can return k = 3.
QUERY = "foxes and their family"


@cache
def _bm25() -> BM25Index:
    return BM25Index.from_texts(CORPUS, ids=IDS, metadatas=METADATAS)


@cache
def _hybrid() -> HybridRetriever:
    # The standard suite builds retrievers from plain constructor params, outside pytest fixtures.
    model_dir = build_tiny_sentence_transformer(Path(tempfile.mkdtemp(prefix="lorag-tiny-st-")))
    return HybridRetriever.from_texts(CORPUS, Embedder(str(model_dir), device="cpu"), ids=IDS, metadatas=METADATAS)


class TestLoragBM25RetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[LoragBM25Retriever]:
        return LoragBM25Retriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"index": _bm25(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestLoragHybridRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[LoragHybridRetriever]:
        return LoragHybridRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": _hybrid(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return QUERY

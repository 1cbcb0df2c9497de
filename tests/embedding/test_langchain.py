"""``LoragEmbeddings`` passes langchain-tests' standard suites and exposes lorag's embedder settings."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_lorag import LoragEmbeddings


@functools.cache
def tiny_model() -> str:
    from tiny_models import build_tiny_sentence_transformer

    return str(build_tiny_sentence_transformer(Path(tempfile.mkdtemp(prefix="lorag-lc-emb-")), hidden=32, layers=1))


class TestLoragEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[LoragEmbeddings]:
        return LoragEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": tiny_model(), "batch_size": 8}


@pytest.mark.real_model
class TestLoragEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[LoragEmbeddings]:
        return LoragEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": "minilm"}


def test_prompts_and_precision_reach_the_embedder() -> None:
    emb = LoragEmbeddings(model=tiny_model(), query_prompt="query: ", precision="binary")
    settings = emb.embedder.settings()
    assert settings["query_prompt"] == "query: " and settings["precision"] == "binary"
    vector = emb.embed_query("a question")
    assert len(vector) == emb.embedder.dimension and set(vector) <= {-1.0, 1.0}


def test_int8_needs_calibration_and_returns_codes() -> None:
    with pytest.raises(ValueError, match="calibration"):
        LoragEmbeddings(model=tiny_model(), precision="int8")
    texts = ["the quick brown fox", "paris is the capital of france", "dense retrieval", "bm25 ranks documents"]
    emb = LoragEmbeddings(model=tiny_model(), precision="int8", calibration_texts=texts)
    codes = np.array(emb.embed_documents(texts))
    assert codes.min() >= -128 and codes.max() <= 127 and np.array_equal(codes, np.round(codes))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        LoragEmbeddings(model=tiny_model(), bogus=1)

"""``LoragEmbedding`` is a LlamaIndex ``BaseEmbedding``: query, text, batch and async paths agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding

from llama_index.embeddings.lorag import LoragEmbedding


def test_mro() -> None:
    assert BaseEmbedding.__name__ in [b.__name__ for b in LoragEmbedding.__mro__]
    assert LoragEmbedding.class_name() == "LoragEmbedding"


@pytest.fixture(scope="module")
def embed_model(teacher_dir: Path) -> LoragEmbedding:
    return LoragEmbedding(model_name=str(teacher_dir), embed_batch_size=4, query_prompt="query: ")


def test_text_batch_and_query_paths(embed_model: LoragEmbedding) -> None:
    texts = [f"text number {i} about retrieval" for i in range(9)]
    batch = np.array(embed_model.get_text_embedding_batch(texts))
    single = np.array([embed_model.get_text_embedding(t) for t in texts])
    assert batch.shape == (9, 32)
    np.testing.assert_allclose(batch, single, atol=1e-5)
    query = np.array(embed_model.get_query_embedding(texts[0]))
    assert not np.allclose(query, single[0])  # the query prompt is applied to queries only
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)


async def test_async_paths_match_sync(embed_model: LoragEmbedding) -> None:
    texts = ["alpha beta", "gamma delta"]
    np.testing.assert_allclose(
        await embed_model.aget_text_embedding_batch(texts), embed_model.get_text_embedding_batch(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        await embed_model.aget_query_embedding("alpha"), embed_model.get_query_embedding("alpha"), atol=1e-6
    )
    np.testing.assert_allclose(
        await embed_model.aget_text_embedding("alpha"), embed_model.get_text_embedding("alpha"), atol=1e-6
    )

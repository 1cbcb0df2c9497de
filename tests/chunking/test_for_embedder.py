"""for_embedder sizes chunks to the embedding model's own window, in its own tokens."""

from __future__ import annotations

import pytest

from lorag.chunking import TokenLength, for_embedder


def test_sized_to_max_seq_length_minus_special_tokens(tiny_st_dir: object) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_dir))
    splitter = for_embedder(str(tiny_st_dir))
    assert splitter.method == "token"
    assert splitter.chunk_size == model.max_seq_length - 2  # [CLS] and [SEP]
    text = "retrieval augmented generation answers questions " * 200
    chunks = splitter.split(text)
    for c in chunks:
        ids = model.tokenizer(c.text)["input_ids"]
        assert len(ids) <= model.max_seq_length, "never truncated when embedded"
    assert isinstance(splitter.length, TokenLength)


def test_accepts_an_embedder_and_other_methods(tiny_st_dir: object) -> None:
    from lorag.embedding import Embedder

    embedder = Embedder(str(tiny_st_dir))
    splitter = for_embedder(embedder, method="recursive", chunk_overlap=8)
    assert splitter.chunk_size == embedder.max_seq_length - 2
    assert splitter.chunk_overlap == 8


@pytest.mark.real_model
def test_minilm_window() -> None:
    splitter = for_embedder("minilm")
    assert splitter.chunk_size == 254  # 256-token window, [CLS] and [SEP]

"""LangChain's ``LoragEmbeddings`` and LlamaIndex's ``LoragEmbedding`` take the same options with the same defaults
(LlamaIndex names two of them its own way), so neither framework lacks a setting of lorag's ``Embedder``."""

from __future__ import annotations

from langchain_lorag import LoragEmbeddings
from llama_index.embeddings.lorag import LoragEmbedding

#: LangChain field -> LlamaIndex field, where ``BaseEmbedding`` fixes the name.
RENAMED = {"model": "model_name", "batch_size": "embed_batch_size"}
#: ``BaseEmbedding``'s own fields, which LangChain's ``Embeddings`` has no counterpart for.
LLAMA_INDEX_ONLY = {"callback_manager", "num_workers", "embeddings_cache", "rate_limiter"}


def test_same_options_same_defaults() -> None:
    langchain = LoragEmbeddings.model_fields
    llama = LoragEmbedding.model_fields
    assert {RENAMED.get(name, name) for name in langchain} == set(llama) - LLAMA_INDEX_ONLY
    for name, spec in langchain.items():
        other = llama[RENAMED.get(name, name)]
        assert other.get_default(call_default_factory=True) == spec.get_default(call_default_factory=True), name

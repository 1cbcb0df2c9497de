"""Adding documents then deleting them returns every index to its original results."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorag.retrieval import BM25Index, HybridRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS, WhitespaceTokenizer

QUERIES = ["fox and dog", "capital city", "programming language", "Paris museum tower"]
WORDS = st.sampled_from([f"w{i}" for i in range(10)])
DOCS = st.lists(st.lists(WORDS, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=12)


@pytest.mark.parametrize("method", ["lucene", "okapi", "bm25l", "bm25plus"])
@settings(max_examples=60, deadline=None)
@given(base=DOCS, extra=DOCS, query=st.lists(WORDS, min_size=1, max_size=4))
def test_bm25_add_then_delete_restores_scores(method: str, base: list[str], extra: list[str], query: list[str]) -> None:
    index = BM25Index.from_texts(base, method=method, tokenizer=WhitespaceTokenizer())
    before = index.scores_for_tokens(query)
    vocab_before = dict(index.vocab)
    added = index.add(extra)
    assert len(index) == len(base) + len(extra)
    index.delete(added)
    np.testing.assert_array_equal(index.scores_for_tokens(query), before)
    assert index.vocab == vocab_before
    fresh = BM25Index.from_texts(base, method=method, tokenizer=WhitespaceTokenizer())
    np.testing.assert_array_equal(fresh.scores_for_tokens(query), before)


def test_bm25_delete_from_the_middle_equals_a_fresh_build() -> None:
    index = BM25Index.from_texts(CORPUS, ids=IDS, metadatas=METADATAS, method="okapi")
    index.delete(["doc-2", "doc-5"])
    keep = [i for i in range(len(CORPUS)) if i not in (2, 5)]
    fresh = BM25Index.from_texts(
        [CORPUS[i] for i in keep], ids=[IDS[i] for i in keep], metadatas=[METADATAS[i] for i in keep], method="okapi"
    )
    for q in QUERIES:
        assert index.search(q, k=5) == fresh.search(q, k=5)
        assert index.search(q, k=5, filter={"topic": "geography"}) == fresh.search(
            q, k=5, filter={"topic": "geography"}
        )


def test_hybrid_add_then_delete_restores_results(tiny_embedder) -> None:
    hybrid = HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS)
    before = [hybrid.search(q, k=5) for q in QUERIES]
    vectors_before = hybrid.dense.vectors().copy()
    docs_before = copy.deepcopy(hybrid.bm25.docs.to_json())
    hybrid.add(["Foxes and dogs play in Paris.", "A capital city programming museum."], ids=["x1", "x2"])
    assert len(hybrid) == len(CORPUS) + 2 and len(hybrid.dense) == len(CORPUS) + 2
    assert any(h.id in {"x1", "x2"} for q in QUERIES for h in hybrid.search(q, k=5))
    hybrid.delete(["x1", "x2"])
    assert [hybrid.search(q, k=5) for q in QUERIES] == before
    np.testing.assert_array_equal(hybrid.dense.vectors(), vectors_before)
    assert hybrid.bm25.docs.to_json() == docs_before


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_dense_indexes_support_delete(tiny_embedder, index_type: str) -> None:
    hybrid = HybridRetriever.from_texts(
        CORPUS, tiny_embedder, ids=IDS, dense_kwargs={"index_type": index_type, "ivf_nlist": 2}
    )
    hybrid.delete(["doc-0", "doc-9"])
    assert len(hybrid.dense) == len(CORPUS) - 2
    found = {h.id for h in hybrid.dense.search("foxes", k=20)}
    assert found <= set(IDS) - {"doc-0", "doc-9"}

"""Our okapi, bm25l and bm25plus scores equal rank-bm25's for the same tokens (relative error <= 1e-5)."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import rank_bm25
from hypothesis import given, settings
from hypothesis import strategies as st

from lorag.retrieval import BM25Index
from lorag.retrieval import bm25 as bm25_module
from tests.retrieval.retrieval_data import WhitespaceTokenizer

REFERENCE = {"okapi": rank_bm25.BM25Okapi, "bm25l": rank_bm25.BM25L, "bm25plus": rank_bm25.BM25Plus}
WORDS = st.sampled_from([f"w{i}" for i in range(12)])
CORPORA = st.lists(st.lists(WORDS, min_size=0, max_size=15), min_size=1, max_size=25).filter(lambda docs: any(docs))
QUERIES = st.lists(st.one_of(WORDS, st.just("unseen")), min_size=1, max_size=6)
# b < 1: at b = 1 an empty document makes rank-bm25 divide 0 by 0 (NaN), which is not a score to match.
PARAMS = st.tuples(st.floats(0.1, 3.0), st.floats(0.0, 0.99), st.floats(0.0, 2.0))


def _assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    # Relative error <= 1e-5, measured against the largest score magnitude of the query so that sums which cancel to
    # ~0 (Okapi's floored negative IDFs) are compared at the scale of their terms.
    scale = max(float(np.max(np.abs(ref))), 1e-12)
    assert np.max(np.abs(ours - ref)) <= 1e-5 * scale, (ours, ref)


@pytest.mark.parametrize("method", list(REFERENCE))
@settings(max_examples=150, deadline=None)
@given(corpus=CORPORA, query=QUERIES, params=PARAMS)
def test_scores_match_rank_bm25(method: str, corpus: list[list[str]], query: list[str], params: tuple) -> None:
    k1, b, extra = params
    kwargs = {"k1": k1, "b": b}
    if method == "okapi":
        kwargs["epsilon"] = extra
    else:
        kwargs["delta"] = extra
    ref = REFERENCE[method](corpus, **kwargs).get_scores(query)
    index = BM25Index.from_texts(
        [" ".join(d) for d in corpus], method=method, tokenizer=WhitespaceTokenizer(), **kwargs
    )
    _assert_close(index.scores_for_tokens(query), ref)
    # The same through the string API, which also sees repeated query words twice.
    _assert_close(index.get_scores(" ".join(query)), ref)


def test_repeated_query_tokens_count_twice() -> None:
    corpus = [["a", "b"], ["b", "c"], ["c", "d", "a"]]
    index = BM25Index.from_texts([" ".join(d) for d in corpus], method="okapi", tokenizer=WhitespaceTokenizer())
    once = index.scores_for_tokens(["a"])
    np.testing.assert_allclose(index.scores_for_tokens(["a", "a"]), 2 * once)
    np.testing.assert_allclose(index.scores_for_tokens(["a", "a"]), rank_bm25.BM25Okapi(corpus).get_scores(["a", "a"]))


def test_lucene_matches_its_formula() -> None:
    corpus = [["a", "b", "a"], ["b"], ["c", "a"]]
    index = BM25Index.from_texts([" ".join(d) for d in corpus], tokenizer=WhitespaceTokenizer(), k1=1.2, b=0.75)
    n, df, avgdl = 3, 2, 2.0
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = [idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl)) for tf, dl in [(2, 3), (0, 1), (1, 2)]]
    np.testing.assert_allclose(index.scores_for_tokens(["a"]), expected, rtol=1e-12)


@pytest.mark.parametrize("path", ["numpy", "compiled"])
@pytest.mark.parametrize("method", [*REFERENCE, "lucene"])
@settings(max_examples=80, deadline=None)
@given(
    corpus=CORPORA,
    queries=st.lists(QUERIES, min_size=1, max_size=5),
    k=st.integers(1, 8),
    eps=st.sampled_from([0.0, 0.25]),
    filtered=st.booleans(),
)
def test_top_k_single_and_batch_equal_a_full_sort(
    path: str, method: str, corpus: list[list[str]], queries: list[list[str]], k: int, eps: float, filtered: bool
) -> None:
    """search and search_batch, on the numpy path and the compiled one (numba), give the k best documents containing
    a query token, ties by row: what sorting every score gives. epsilon 0 makes some Okapi IDFs exactly 0 (zero-score
    candidates); the filter keeps even rows."""
    if path == "compiled" and bm25_module.compiled is None:
        pytest.skip("numba is not installed (lorag[fast])")
    index = BM25Index.from_texts(
        [" ".join(d) for d in corpus],
        method=method,
        epsilon=eps,
        tokenizer=WhitespaceTokenizer(),
        metadatas=[{"even": row % 2 == 0} for row in range(len(corpus))],
    )
    texts = [" ".join(q) for q in queries]
    where = {"even": True} if filtered else None
    with patch.object(bm25_module, "compiled", None if path == "numpy" else bm25_module.compiled):
        batch = index.search_batch(texts, k=k, filter=where)
        singles = [index.search(text, k=k, filter=where) for text in texts]
    for q, hits, single in zip(queries, batch, singles, strict=True):
        scores = index.scores_for_tokens(q)
        containing = [r for r, doc in enumerate(corpus) if set(doc) & set(q) and (not filtered or r % 2 == 0)]
        expected = sorted(containing, key=lambda row: (-scores[row], row))[:k]
        for found in (hits, single):
            assert [h.id for h in found] == [index.docs.ids[row] for row in expected]
            np.testing.assert_allclose([h.score for h in found], scores[expected], rtol=1e-9, atol=1e-12)

"""Metadata filter operators ($ne, $nin, ranges, $and/$or/$not): the index mask, per-document ``matches`` and a
hand-written oracle agree on random filters, in BM25 and FAISS searches alike; malformed filters name the problem."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorag.retrieval import BM25Index, DenseIndex
from lorag.retrieval.filters import matches, parse
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

# Extra metadata shapes: a missing key, strings to compare, a list value (compared as a whole).
META: list[dict[str, Any]] = [
    {**m, "lang": lang} if lang else dict(m) for m, lang in zip(METADATAS, ["en", "fr", None, "de"] * 3, strict=False)
]
META[4]["tags"] = ["a", "b"]

KEYS = ["topic", "year", "lang", "tags"]
VALUES = ["animals", "geography", "computing", "en", "fr", "de", 2001, 2004, 2006.5, 2010, ["a", "b"]]


def one(x: Any, op: str, v: Any) -> bool:
    if op in ("$eq", "$ne"):
        return (x == v) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (x in v) == (op == "$in")
    if isinstance(x, str) != isinstance(v, str) or not isinstance(x, (int, float, str)):
        return False
    return {"$gt": x > v, "$gte": x >= v, "$lt": x < v, "$lte": x <= v}[op]


def oracle(meta: dict[str, Any], f: dict[str, Any]) -> bool:
    """The documented rules, written out independently of the implementation."""
    results = []
    for key, wanted in f.items():
        if key == "$and":
            results.append(all(oracle(meta, g) for g in wanted))
        elif key == "$or":
            results.append(any(oracle(meta, g) for g in wanted))
        elif key == "$not":
            results.append(not oracle(meta, wanted))
        else:
            for op, v in wanted.items():
                results.append(one(meta[key], op, v) if key in meta else op in ("$ne", "$nin"))
    return all(results)


scalar = st.sampled_from([v for v in VALUES if not isinstance(v, list)])
condition = st.one_of(
    st.builds(
        lambda k, op, v: {k: {op: v}}, st.sampled_from(KEYS), st.sampled_from(["$eq", "$ne"]), st.sampled_from(VALUES)
    ),
    st.builds(
        lambda k, op, vs: {k: {op: vs}},
        st.sampled_from(KEYS),
        st.sampled_from(["$in", "$nin"]),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, op, v: {k: {op: v}}, st.sampled_from(KEYS), st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar
    ),
)
filters = st.recursive(
    condition,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
    ),
    max_leaves=6,
)

BM25 = BM25Index.from_texts(CORPUS, ids=IDS, metadatas=META)


@settings(max_examples=300, deadline=None)
@given(filters)
def test_mask_matches_and_oracle_agree(f: dict[str, Any]) -> None:
    expected = [oracle(m, f) for m in META]
    assert [matches(m, f) for m in META] == expected
    assert BM25.docs.mask(f).tolist() == expected


def test_bm25_and_dense_searches_apply_operators(tiny_embedder) -> None:
    dense = DenseIndex.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=META)
    f = {"$or": [{"year": {"$gte": 2008}}, {"lang": {"$nin": ["en", "fr"]}, "topic": {"$ne": "computing"}}]}
    want = {i for i, m in zip(IDS, META, strict=True) if oracle(m, f)}
    assert want == {"doc-2", "doc-3", "doc-6", "doc-7", "doc-8", "doc-9"}
    assert {h.id for h in BM25.search("the of is", k=10, filter=f)} <= want
    assert {h.id for h in dense.search("capital city", k=10, filter=f)} == want


def test_plain_forms_keep_their_meaning() -> None:
    assert parse({"topic": "animals"}) == parse({"topic": {"$eq": "animals"}})
    assert parse({"year": [2001, 2002]}) == parse({"year": {"$in": [2001, 2002]}})
    assert matches({"tags": ["a", "b"]}, {"tags": {"$eq": ["a", "b"]}})
    assert matches({"point": {"x": 1}}, {"point": {"x": 1}})  # a dict without $ keys is a value, not operators


@pytest.mark.parametrize(
    ("f", "error", "message"),
    [
        ({"year": {"$between": [1, 2]}}, ValueError, r"unsupported filter operator '\$between' on 'year'"),
        ({"$xor": [{"a": 1}]}, ValueError, r"unsupported filter combinator '\$xor'"),
        ({"$or": []}, ValueError, r"\$or takes a non-empty list"),
        ({"year": {"$in": 2001}}, ValueError, r"\$in on 'year' takes a list"),
        ({"year": {"$gt": [2001]}}, ValueError, r"\$gt on 'year' compares with a number or a string"),
        ([("year", 2001)], TypeError, "filter must be a mapping"),
    ],
)
def test_malformed_filters_name_the_problem(f: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        BM25.search("fox", k=3, filter=f)


def test_a_langchain_vector_store_backend_applies_operators() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_lorag.vectorstores import LangChainVectorStoreBackend

    store = LangChainVectorStoreBackend(InMemoryVectorStore(DeterministicFakeEmbedding(size=8)))
    store.add(CORPUS, ids=IDS, metadatas=META)
    f = {"$or": [{"year": {"$gte": 2008}}, {"lang": {"$nin": ["en", "fr"]}, "topic": {"$ne": "computing"}}]}
    assert {h.id for h in store.search("capital city", k=10, filter=f)} == {
        i for i, m in zip(IDS, META, strict=True) if oracle(m, f)
    }

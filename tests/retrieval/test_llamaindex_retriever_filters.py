"""LlamaIndex ``MetadataFilters`` on lorag's retrievers: they select what LlamaIndex's own filter function selects,
survive the round trip to lorag's filters and back (the vector-store path), and an operator lorag lacks is refused by
name when the retriever is built, not ignored."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from llama_index.retrievers.lorag import LoragBM25Retriever, LoragHybridRetriever
from llama_index.retrievers.lorag.filters import from_metadata_filters, to_metadata_filters
from lorag.retrieval.filters import matches
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

META: list[dict[str, Any]] = [{**m, "lang": ["en", "fr"][i % 2]} for i, m in enumerate(METADATAS)]
del META[3]["lang"]  # a node without the key: NE and NIN keep it, the rest drop it
BY_ID = dict(zip(IDS, META, strict=True))
SUPPORTED = [
    FilterOperator.EQ,
    FilterOperator.NE,
    FilterOperator.GT,
    FilterOperator.GTE,
    FilterOperator.LT,
    FilterOperator.LTE,
    FilterOperator.IN,
    FilterOperator.NIN,
]


def one_filter(key: str, op: FilterOperator, pick: int) -> MetadataFilter:
    values = {"topic": ["animals", "geography", "computing"], "year": [2001, 2004, 2010], "lang": ["en", "fr"]}[key]
    value: Any = values[pick % len(values)]
    if op in (FilterOperator.IN, FilterOperator.NIN):
        value = values[: pick % len(values) + 1]
    return MetadataFilter(key=key, value=value, operator=op)


flat_filters = st.builds(
    lambda parts, condition: MetadataFilters(filters=parts, condition=condition),
    st.lists(
        st.builds(
            one_filter, st.sampled_from(["topic", "year", "lang"]), st.sampled_from(SUPPORTED), st.integers(0, 2)
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT]),
)


@settings(max_examples=200, deadline=None)
@given(flat_filters)
def test_selects_what_llama_index_selects(filters: MetadataFilters) -> None:
    """LlamaIndex's SimpleVectorStore filter function is the reference (it takes flat filters only)."""
    llama = build_metadata_filter_fn(lambda i: BY_ID[i], filters)
    lorag = from_metadata_filters(filters)
    assert [matches(m, lorag) for m in META] == [llama(i) for i in IDS]


def test_nested_filters_on_the_bm25_retriever() -> None:
    filters = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="geography", operator=FilterOperator.NE),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="year", value=2008, operator=FilterOperator.GTE),
                    MetadataFilter(key="lang", value=["fr"], operator=FilterOperator.IN),
                ],
                condition=FilterCondition.OR,
            ),
        ],
        condition=FilterCondition.AND,
    )
    retriever = LoragBM25Retriever.from_texts(CORPUS, IDS, META, similarity_top_k=10, filter=filters)
    assert retriever.filter == {
        "$and": [
            {"topic": {"$ne": "geography"}},
            {"$or": [{"year": {"$gte": 2008}}, {"lang": {"$in": ["fr"]}}]},
        ]
    }
    found = {n.node.node_id for n in retriever.retrieve("the of a and in dogs foxes wolves python rust")}
    assert found == {"doc-1", "doc-7", "doc-9"}  # not geography, and from 2008 on or in French
    assert to_metadata_filters(retriever.filter) == filters  # and back, as the vector-store path sends it


def test_a_vector_store_receives_the_filter() -> None:
    from llama_index.core.embeddings import MockEmbedding

    retriever = LoragHybridRetriever.from_texts(
        CORPUS, ids=IDS, metadatas=META, vector_store=SimpleVectorStore(), embed_model=MockEmbedding(embed_dim=8)
    )
    store_hits = retriever.retriever.dense.search("Paris", k=10, filter={"year": {"$lt": 2004}, "lang": {"$ne": "fr"}})
    assert {h.id for h in store_hits} == {"doc-0", "doc-2"}


@pytest.mark.parametrize(
    "op", [FilterOperator.TEXT_MATCH, FilterOperator.CONTAINS, FilterOperator.ANY, FilterOperator.IS_EMPTY]
)
def test_an_unsupported_operator_is_refused_by_name(op: FilterOperator) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key="topic", value=["animals"], operator=op)])
    with pytest.raises(ValueError, match=rf"operator {op.name} \({op.value!r}\) on 'topic' is not supported"):
        LoragBM25Retriever.from_texts(CORPUS, IDS, META, filter=filters)
    retriever = LoragBM25Retriever.from_texts(CORPUS, IDS, META)
    with pytest.raises(ValueError, match=op.name):
        retriever.filter = filters


def test_empty_filters_keep_everything() -> None:
    retriever = LoragBM25Retriever.from_texts(
        CORPUS, IDS, META, similarity_top_k=10, filter=MetadataFilters(filters=[])
    )
    assert retriever.filter is None and len(retriever.retrieve("Paris")) == 3

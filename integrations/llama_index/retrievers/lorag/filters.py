"""LlamaIndex ``MetadataFilters`` to lorag metadata filters (``lorag.retrieval.filters``) and back.

Both languages have the same comparison operators and and/or/not, nested, so the translation is exact.
LlamaIndex's text-match, contains, any/all and is-empty operators have no lorag counterpart: they raise, naming the
operator, rather than being dropped (a silently ignored filter would return documents the user excluded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from lorag.retrieval.filters import Combined, Condition, parse

_TO_LORAG = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
_FROM_LORAG = {op: llama for llama, op in _TO_LORAG.items()}
_CONDITIONS = {FilterCondition.AND: "$and", FilterCondition.OR: "$or"}


def from_metadata_filters(filters: MetadataFilters) -> dict[str, Any]:
    """A lorag filter selecting what ``filters`` selects; an operator lorag lacks raises ``ValueError`` naming it."""
    parts: list[dict[str, Any]] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(from_metadata_filters(f))
            continue
        op = getattr(f, "operator", FilterOperator.EQ)  # the legacy ExactMatchFilter has no operator
        if op not in _TO_LORAG:
            supported = ", ".join(o.name for o in _TO_LORAG)
            raise ValueError(
                f"MetadataFilter operator {op.name} ({op.value!r}) on {f.key!r} is not supported by lorag's filters; "
                f"supported: {supported}, combined with AND, OR or NOT"
            )
        parts.append({f.key: {_TO_LORAG[op]: f.value}})
    parts = [p for p in parts if p]
    if not parts:
        return {}  # LlamaIndex keeps every node under empty filters
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:  # LlamaIndex: none of the filters holds
        return {"$not": {"$or": parts}}
    return {_CONDITIONS[condition]: parts}


def to_metadata_filters(filter: Mapping[str, Any] | None) -> MetadataFilters | None:
    """A lorag filter as ``MetadataFilters``, for vector stores that filter inside their own search."""
    if not filter:
        return None
    tree = parse(filter)
    if isinstance(tree, Condition):
        return MetadataFilters(filters=[_filter(tree)], condition=FilterCondition.AND)
    return _filters(tree)


def _filter(condition: Condition) -> MetadataFilter:
    return MetadataFilter(key=condition.key, value=condition.value, operator=_FROM_LORAG[condition.op])


def _filters(tree: Combined) -> MetadataFilters:
    parts: list[MetadataFilter | MetadataFilters] = [
        _filter(p) if isinstance(p, Condition) else _filters(p) for p in tree.parts
    ]
    if tree.op == "$not":
        return MetadataFilters(filters=parts, condition=FilterCondition.NOT)
    return MetadataFilters(filters=parts, condition=FilterCondition(tree.op.lstrip("$")))


def lorag_filter(filter: Mapping[str, Any] | MetadataFilters | None) -> dict[str, Any] | None:
    """A retriever's ``filter`` argument (lorag's form or ``MetadataFilters``) in lorag's form, checked now."""
    plain = from_metadata_filters(filter) if isinstance(filter, MetadataFilters) else filter
    if not plain:
        return None
    parse(plain)
    return dict(plain)

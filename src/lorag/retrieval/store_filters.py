"""lorag filters pushed down to a vector store: the part a store can apply itself, in its own dialect.

A store that filters inside its search returns the top documents *among those that pass*, so a selective filter costs
one round trip instead of fetching deeper and deeper. Stores type metadata their own way, so only what they evaluate
at least as loosely as lorag is pushed down: equality and membership on strings, numbers and booleans, and numeric
ranges, joined by ``$and`` (a part that cannot go is left out, which only widens the filter) and ``$or`` (pushed only
when all its parts can go). Negations (``$ne``, ``$nin``, ``$not``) keep documents that lack the key, which stores do
not agree on, so they stay on lorag's side. The caller re-checks every returned document with
``lorag.retrieval.filters.matches``, so the pushed filter narrows the search and never decides alone.

One difference remains: a pushed equality compares as the store does, so ``1`` does not find ``true`` (Python's
``True == 1`` holds for lorag's own indexes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorag.retrieval.filters import Combined, Condition, Filter

_SCALARS = (str, int, float, bool)
_RANGES = ("$gt", "$gte", "$lt", "$lte")


def _pushable_value(value: Any) -> bool:
    return isinstance(value, _SCALARS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def pushable(
    tree: Filter, key_ok: Callable[[str], bool] | None = None, value_ok: Callable[[Any], bool] | None = None
) -> Filter | None:
    """The widest part of ``tree`` a store can apply (``None``: nothing); ``key_ok(key)`` rejects keys it cannot
    address (pgvector takes identifiers only), ``value_ok(value)`` values it cannot compare safely (PGVectorStore
    casts a JSON value per row, so it takes strings only)."""
    if isinstance(tree, Condition):
        if key_ok is not None and not key_ok(tree.key):
            return None
        values = tree.value if tree.op == "$in" else [tree.value]
        if value_ok is not None and not all(value_ok(v) for v in values):
            return None
        if tree.op == "$eq" and _pushable_value(tree.value):
            return tree
        if tree.op == "$in" and tree.value and all(_pushable_value(v) for v in tree.value):
            return tree
        if tree.op in _RANGES and _is_number(tree.value):
            return tree
        return None
    if tree.op == "$not":
        return None
    parts = [pushable(part, key_ok, value_ok) for part in tree.parts]
    if tree.op == "$or":
        return None if any(p is None for p in parts) else Combined("$or", tuple(p for p in parts if p is not None))
    kept = tuple(p for p in parts if p is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else Combined("$and", kept)


def to_mongo(tree: Filter) -> dict[str, Any]:
    """A pushable filter in the MongoDB-style dialect of langchain-postgres's ``PGVector`` (JSONB path queries).

    ``$in`` becomes ``$or`` of equalities: PGVector's own ``$in`` compares the values as text, so ``1`` would miss
    ``1.0``, while its equality compares JSON numbers as numbers.
    """
    if isinstance(tree, Combined):
        return {tree.op: [to_mongo(part) for part in tree.parts]}
    if tree.op == "$in":
        equalities = [{tree.key: {"$eq": v}} for v in tree.value]
        return equalities[0] if len(equalities) == 1 else {"$or": equalities}
    return {tree.key: {tree.op: tree.value}}


def to_qdrant(tree: Filter, prefix: str = "") -> dict[str, Any]:
    """A pushable filter as a Qdrant payload filter in its JSON form (``models.Filter.model_validate`` reads it).

    ``prefix`` is where the store keeps metadata in the payload (``"metadata."`` for langchain-qdrant). Qdrant matches
    keywords and booleans; a number equality becomes the range ``[v, v]``, so ``1`` finds ``1.0`` as lorag does.
    """
    if isinstance(tree, Combined):
        return {"must" if tree.op == "$and" else "should": [to_qdrant(part, prefix) for part in tree.parts]}
    key = prefix + tree.key
    if tree.op in _RANGES:
        return {"must": [{"key": key, "range": {tree.op[1:]: tree.value}}]}
    values = tree.value if tree.op == "$in" else [tree.value]
    return {"should": [_qdrant_equal(key, v) for v in values]}


def _qdrant_equal(key: str, value: Any) -> dict[str, Any]:
    if _is_number(value):
        return {"key": key, "range": {"gte": value, "lte": value}}
    return {"key": key, "match": {"value": value}}

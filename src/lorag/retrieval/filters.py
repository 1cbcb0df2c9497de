"""Metadata filters: a small MongoDB-style language, parsed once, checked against one document or a whole column.

The plain forms are the common case and stay plain: ``{key: value}`` keeps documents whose metadata equals ``value``;
``{key: [v1, v2]}`` (a list, tuple, set or frozenset) keeps those whose value is one of them; several keys must all
hold. For the rest, a key maps to operators, ``{key: {"$gte": 2020, "$lt": 2024}}`` (all must hold), and filters
combine with ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}`` and ``{"$not": f}``, nested freely. These are the operators
LlamaIndex's ``MetadataFilters`` and most vector stores share, so framework filters translate without loss.

A document without the key fails every operator except ``$ne`` and ``$nin`` (as in MongoDB and LlamaIndex).
``$gt``/``$gte``/``$lt``/``$lte`` compare numbers with numbers and strings with strings; any other pair fails.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

#: A metadata filter in the language above.
MetadataFilter = Mapping[str, Any]

MEMBERSHIP = (list, tuple, set, frozenset)
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
OPERATORS = ("$eq", "$ne", "$in", "$nin", *_ORDER)
COMBINATORS = ("$and", "$or", "$not")


class Condition(NamedTuple):
    """One test on one metadata key: ``op`` is one of ``OPERATORS``; ``value`` a list for ``$in`` / ``$nin``."""

    key: str
    op: str
    value: Any


class Combined(NamedTuple):
    """``$and`` / ``$or`` over parts, or ``$not`` of its single part."""

    op: str
    parts: tuple[Condition | Combined, ...]


Filter = Condition | Combined


def hashable(value: Any) -> Any:
    """Metadata values as dictionary keys: JSON lists and objects compare by their canonical JSON text."""
    if isinstance(value, (list, dict)):
        return ("__json__", json.dumps(value, sort_keys=True))
    return value


def parse(filter: MetadataFilter) -> Filter:
    """The filter as a tree of ``Condition`` / ``Combined``; a malformed one raises naming what is wrong."""
    if not isinstance(filter, Mapping):
        raise TypeError(
            f"filter must be a mapping of metadata key to value, list of values or operators, got {filter!r}"
        )
    parts: list[Filter] = []
    for key, wanted in filter.items():
        if key in COMBINATORS:
            parts.append(_combined(key, wanted))
        elif isinstance(key, str) and key.startswith("$"):
            raise ValueError(f"unsupported filter combinator {key!r}; supported: {', '.join(COMBINATORS)}")
        elif isinstance(wanted, Mapping) and wanted and all(isinstance(k, str) and k.startswith("$") for k in wanted):
            parts.extend(_condition(key, op, value) for op, value in wanted.items())
        elif isinstance(wanted, MEMBERSHIP):
            parts.append(Condition(key, "$in", list(wanted)))
        else:
            parts.append(Condition(key, "$eq", wanted))
    return parts[0] if len(parts) == 1 else Combined("$and", tuple(parts))


def _combined(op: str, wanted: Any) -> Combined:
    if op == "$not":
        return Combined(op, (parse(wanted),))
    if not isinstance(wanted, MEMBERSHIP) or not wanted:
        raise ValueError(f"{op} takes a non-empty list of filters, got {wanted!r}")
    return Combined(op, tuple(parse(f) for f in wanted))


def _condition(key: str, op: str, value: Any) -> Condition:
    if op in ("$in", "$nin"):
        if not isinstance(value, MEMBERSHIP):
            raise ValueError(f"{op} on {key!r} takes a list of values, got {value!r}")
        return Condition(key, op, list(value))
    if op in _ORDER and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise ValueError(f"{op} on {key!r} compares with a number or a string, got {value!r}")
    if op not in OPERATORS:
        raise ValueError(f"unsupported filter operator {op!r} on {key!r}; supported: {', '.join(OPERATORS)}")
    return Condition(key, op, value)


def holds(condition: Condition, value: Any) -> bool:
    """Whether a metadata value that is present passes ``condition``."""
    op, wanted = condition.op, condition.value
    if op in ("$eq", "$ne"):
        return (hashable(value) == hashable(wanted)) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (hashable(value) in {hashable(v) for v in wanted}) == (op == "$in")
    if isinstance(value, bool) or isinstance(wanted, str) != isinstance(value, str):
        return False
    if not isinstance(value, (int, float, str)):
        return False
    return _ORDER[op](value, wanted)


def _holds_when_missing(condition: Condition) -> bool:
    return condition.op in ("$ne", "$nin")


def matches(metadata: Mapping[str, Any], filter: MetadataFilter | Filter) -> bool:
    """Whether one document's metadata passes ``filter`` (the rule ``mask`` applies to all rows at once)."""
    tree = filter if isinstance(filter, (Condition, Combined)) else parse(filter)
    if isinstance(tree, Condition):
        if tree.key not in metadata:
            return _holds_when_missing(tree)
        return holds(tree, metadata[tree.key])
    if tree.op == "$not":
        return not matches(metadata, tree.parts[0])
    results = (matches(metadata, part) for part in tree.parts)
    return all(results) if tree.op == "$and" else any(results)


def mask(filter: MetadataFilter, size: int, column: Callable[[str], Mapping[Any, np.ndarray]]) -> np.ndarray:
    """Boolean mask over ``size`` rows that pass ``filter``; ``column(key)`` gives the rows of each distinct value
    of ``key`` (keys as ``hashable`` makes them), so each test runs once per distinct value, not once per row."""
    return _mask(parse(filter), size, column)


def _mask(tree: Filter, size: int, column: Callable[[str], Mapping[Any, np.ndarray]]) -> np.ndarray:
    if isinstance(tree, Combined):
        parts = [_mask(part, size, column) for part in tree.parts]
        if tree.op == "$not":
            return ~parts[0]
        return np.logical_and.reduce(parts) if tree.op == "$and" else np.logical_or.reduce(parts)
    values = column(tree.key)
    keep = np.zeros(size, dtype=bool)
    if tree.op in ("$eq", "$in"):  # the common case: look the wanted values up
        for v in tree.value if tree.op == "$in" else [tree.value]:
            rows = values.get(hashable(v))
            if rows is not None:
                keep[rows] = True
        return keep
    present = np.zeros(size, dtype=bool)
    for value, rows in values.items():
        present[rows] = True
        if holds(tree, _stored(value)):
            keep[rows] = True
    if _holds_when_missing(tree):
        keep |= ~present
    return keep


def _stored(value: Any) -> Any:
    """A column key back as the metadata value it stands for."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__json__":
        return json.loads(value[1])
    return value

"""Each row of a batch through its own LoRA adapter, with rows grouped by adapter.

peft's ``adapter_names`` path (``LoraLayer._mixed_batch_forward``) gathers each adapter's rows with an index list,
runs that adapter's A and B on the copy and scatters the result back: per layer and step a set, list comprehensions
and two index copies per adapter. The scheduler lays rows out grouped by adapter, so each group is a contiguous slice.
Here the base layer runs alone (peft's ``disable_adapters`` path) and a forward hook adds each group's
``B(A(dropout(x))) * scaling`` into its slice of the output, in place. Per row the arithmetic is peft's (the same
matrices on the same contiguous rows), so a row's result does not depend on which path computed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Groups = tuple[tuple[str, int, int], ...]
_GROUPS: ContextVar[Groups | None] = ContextVar("lorag_lora_row_groups", default=None)


def row_groups(adapter_names: Sequence[str]) -> Groups:
    """``(adapter, start, stop)`` for each run of equal consecutive names."""
    runs = []
    start = 0
    for i in range(1, len(adapter_names) + 1):
        if i == len(adapter_names) or adapter_names[i] != adapter_names[start]:
            runs.append((adapter_names[start], start, i))
            start = i
    return tuple(runs)


def add_group_deltas(layer: Any, args: tuple[Any, ...], output: Any) -> Any:
    """Forward hook on a peft ``LoraLayer``: inside ``grouped_rows``, add each group's LoRA product to its rows."""
    groups = _GROUPS.get()
    if groups is None:
        return None
    x = args[0]
    if x.shape[0] != groups[-1][2]:
        raise RuntimeError(f"a LoRA layer got {x.shape[0]} rows, the batch has {groups[-1][2]}")
    for name, start, stop in groups:
        if name not in layer.lora_A:  # the bare base ("__base__"), or an adapter that does not target this layer
            continue
        lora_a = layer.lora_A[name]
        rows = x[start:stop]
        if rows.dtype != lora_a.weight.dtype:
            rows = rows.to(lora_a.weight.dtype)
        delta = layer.lora_B[name](lora_a(layer.lora_dropout[name](rows))) * layer.scaling[name]
        output[start:stop] += delta.to(output.dtype)
    return output


@contextmanager
def grouped_rows(layers: Sequence[Any], adapter_names: Sequence[str]) -> Iterator[None]:
    """Within the block, row ``i`` of every forward pass goes through ``adapter_names[i]``; ``layers`` are the model's
    LoRA layers, each carrying the ``add_group_deltas`` hook."""
    token = _GROUPS.set(row_groups(adapter_names))
    for layer in layers:
        layer._disable_adapters = True  # the layer's own forward runs the base layer only
    try:
        yield
    finally:
        for layer in layers:
            layer._disable_adapters = False
        _GROUPS.reset(token)

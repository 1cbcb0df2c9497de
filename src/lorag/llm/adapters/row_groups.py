"""Which rows of a batch go through which adapter: the row groups every hook reads, so mixed kinds share a forward pass.

The scheduler lays rows out in groups, one contiguous slice per *route* (``row_groups``), and every decode step is
ONE forward pass over all of them, whatever the mix of kinds:

- LoRA: the base layer runs on the whole batch (peft's ``disable_adapters`` path) and a forward hook on each LoRA layer
  adds each group's ``B(A(dropout(x))) * scaling`` into its slice of the output, in place
  (``injection.add_group_deltas``). peft's own ``adapter_names`` path (``LoraLayer._mixed_batch_forward``) gathers
  each adapter's rows with an index list and scatters them back, per layer and step; slices avoid that. Per row the
  arithmetic is peft's.
- IA3 and bottleneck: hooks on the base layers they target change their group's slice (``layer_effects``).
- prompt and prefix tuning: their trained virtual tokens enter the request's KV cache at prefill (``virtual_tokens``);
  after that the request needs only the bare base layers, so its rows decode in the base's group (route
  ``"__base__"``), beside requests without adapter.

So a mixed batch costs no extra forward pass; what it costs is one small product per group and hooked layer
(``benchmarks/results/mixed_adapter_kinds.md`` measures it; with ``exact_batching`` each product runs per row,
``lorag.llm.rowwise``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

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


def rows_of(name: str, n_rows: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` slices of ``name``'s rows in the current forward pass (none outside ``grouping``)."""
    groups = active_groups()
    if groups is None:
        return []
    if n_rows != groups[-1][2]:
        raise RuntimeError(f"a hooked layer got {n_rows} rows, the batch has {groups[-1][2]}")
    return [(start, stop) for group, start, stop in groups if group == name]


def active_groups() -> Groups | None:
    """The row groups of the forward pass under way (None outside ``grouping``)."""
    return _GROUPS.get()


@contextmanager
def grouping(adapter_names: Sequence[str]) -> Iterator[None]:
    """Within the block, row ``i`` of every forward pass belongs to ``adapter_names[i]``'s group."""
    token = _GROUPS.set(row_groups(adapter_names))
    try:
        yield
    finally:
        _GROUPS.reset(token)

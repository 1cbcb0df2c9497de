"""Adapters on one shared base, one job per module: the registry, read-and-check, injection, the format.

- ``registry``: ``AdapterRegistry``: names -> adapter folders, LRU residency, pins, busy counts, versions.
- ``compositions``: weighted compositions of LoRA adapters (what may combine, when a build is stale, its version).
- ``validation``: reads an adapter folder and checks it against the base, with no side effects -> ``ValidatedAdapter``.
- ``injection``: puts a validated adapter into the base by kind and takes it out; the only module that touches
  peft's internals (LoRA layers).
- ``layer_effects``: IA3 and bottleneck adapters as forward hooks on the base's layers, per row group.
- ``virtual_tokens``: prompt- and prefix-tuning adapters as virtual tokens placed before a prompt at prefill.
- ``row_groups``: which rows of a mixed batch go through which adapter, for the hooks above.
- ``entries``: what the registry records per adapter (``AdapterInfo``: the snapshot it hands out).
- ``format``: what an adapter folder is: file names, metadata keys, kinds, saved weight names (the trainer imports
  them too); ``errors``: the errors about adapters.
"""

from __future__ import annotations

from lorag.llm.adapters.entries import AdapterInfo
from lorag.llm.adapters.errors import AdapterBusyError, AdapterError, BaseMismatchWarning, UnknownAdapterError
from lorag.llm.adapters.format import BASE_ADAPTER
from lorag.llm.adapters.registry import AdapterRegistry

__all__ = [
    "BASE_ADAPTER",
    "AdapterBusyError",
    "AdapterError",
    "AdapterInfo",
    "AdapterRegistry",
    "BaseMismatchWarning",
    "UnknownAdapterError",
]

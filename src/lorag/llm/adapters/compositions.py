"""Weighted compositions of LoRA adapters (peft ``add_weighted_adapter``): what a composition may combine, when its
build is out of date, and how it is built and versioned.

A composition is a registry entry with a ``recipe`` (source adapter -> weight) in place of a folder. Its rules live
here, apart from the registry's names and residency, because they are about recipes alone: only LoRA adapters from
files combine, a build records the source versions it was made from (``stale`` compares them with the current ones so
the registry rebuilds it), and its version is a hash of those versions and the recipe, so a cache keyed by it never
serves output from older sources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager

from lorag.llm.adapters.entries import Entry
from lorag.llm.adapters.errors import AdapterError
from lorag.llm.adapters.injection import ResidentAdapters


def check_recipe(
    name: str, weights: Mapping[str, float], entries: Mapping[str, Entry], lookup: Callable[[str], Entry]
) -> None:
    """Refuse a composition before it is registered: no sources, a taken name, or a source that is a composition or
    an adapter of another kind than LoRA (a source not loaded yet is checked when the composition is built)."""
    if not weights:
        raise AdapterError("compose() needs at least one source adapter")
    if name in entries:
        raise AdapterError(f"adapter {name!r} is already registered; remove() it first")
    for source in weights:
        if lookup(source).recipe is not None:
            raise AdapterError(f"{source!r} is itself a composition; compose from file adapters")
        if lookup(source).kind not in (None, "lora"):  # None: not loaded yet, checked once it is
            raise AdapterError(
                f"cannot compose {name!r}: compositions combine LoRA adapters (peft add_weighted_adapter), "
                f"and {source!r} is a {lookup(source).kind} adapter"
            )


def stale(entry: Entry, entries: Mapping[str, Entry]) -> bool:
    """Whether a resident composition was built from other versions of its sources than those registered now."""
    assert entry.recipe is not None
    current = {s: entries[s].version for s in entry.recipe if s in entries}
    return entry.resident and current != entry.source_versions


def build(
    entry: Entry,
    entries: Mapping[str, Entry],
    use: Callable[[Iterable[str]], AbstractContextManager[list[str]]],
    resident: ResidentAdapters,
) -> None:
    """Put a composition into the base, its sources held resident by ``use`` meanwhile, and record its version."""
    assert entry.recipe is not None
    try:
        with use(entry.recipe) as held:
            versions = dict(zip(entry.recipe, held, strict=True))
            kinds = {s: entries[s].kind for s in versions}
            if any(kind != "lora" for kind in kinds.values()):
                raise AdapterError(
                    f"cannot compose {entry.name!r}: compositions combine LoRA adapters (peft add_weighted_adapter), "
                    f"and the sources are {kinds}"
                )
            resident.add_weighted(entry.name, dict(entry.recipe), entry.combination_type)
    except AdapterError:
        raise
    except Exception as err:
        raise AdapterError(f"cannot compose {entry.name!r} from {entry.recipe}: {err}") from err
    entry.kind = "lora"
    entry.source_versions = versions
    payload = json.dumps([versions, entry.recipe, entry.combination_type], sort_keys=True)
    entry.version = hashlib.sha256(payload.encode()).hexdigest()[:16]
    entry.resident = True

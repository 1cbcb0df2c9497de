"""What the registry records about each adapter: the entry it keeps under its lock, and ``AdapterInfo``, the
snapshot it hands out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdapterInfo:
    """What the registry knows about one adapter (a snapshot)."""

    name: str
    path: str | None
    resident: bool
    pinned: bool
    version: str | None
    rank: int | None = None
    target_modules: tuple[str, ...] = ()
    recipe: dict[str, float] | None = None
    """For a weighted composition: source adapter -> weight."""
    kind: str | None = None
    """``lora``, ``ia3``, ``bottleneck``, ``prompt-tuning`` or ``prefix-tuning``; None until first loaded."""


@dataclass
class Entry:
    """What the registry keeps about one adapter, under its lock; ``info()`` is the snapshot it hands out."""

    name: str
    path: str | None
    pinned: bool = False
    allow_pickle: bool = False
    resident: bool = False
    version: str | None = None
    rank: int | None = None
    target_modules: tuple[str, ...] = ()
    recipe: dict[str, float] | None = None
    combination_type: str = "linear"
    source_versions: dict[str, str] = field(default_factory=dict)
    busy: int = 0
    kind: str | None = None

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            self.name,
            self.path,
            self.resident,
            self.pinned,
            self.version,
            self.rank,
            self.target_modules,
            dict(self.recipe) if self.recipe else None,
            self.kind,
        )

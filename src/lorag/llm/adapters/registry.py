"""The adapter registry: which adapters there are by name over one shared base, and which are resident in it (LRU
residency, pins, busy counts); one job, since registering, loading, evicting and serving all change the same entries
under one lock.

Adapters are registered by name -> directory (a standard peft dir, ``format``) and loaded into the base on first
use. Every kind ``lorag train-adapter`` makes is served: LoRA, IA3, bottleneck, prompt tuning and prefix tuning, side
by side on the same base, chosen per request. Each is read and checked first (``validation``), so a refused adapter
leaves the registry and the base as they were; then put into the base by kind (``injection``).

Each adapter carries a content ``version`` (sha256 of its config and weight bytes). Reloading an adapter under the same
name with other weights changes the version, so any cache keyed by (adapter, version) cannot serve stale output.
Weighted compositions of LoRA adapters are entries too, built by ``compositions`` (what may combine, when a build is
stale, its version).

Residency is bounded (``max_resident``): loading one more evicts the least recently used adapter that is neither
pinned nor serving a request; evicted adapters stay registered and come back on the next request.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from lorag.llm.adapters import compositions
from lorag.llm.adapters.entries import AdapterInfo, Entry
from lorag.llm.adapters.errors import AdapterBusyError, AdapterError, UnknownAdapterError
from lorag.llm.adapters.format import BASE_ADAPTER, VIRTUAL_TOKEN_KINDS
from lorag.llm.adapters.injection import ResidentAdapters, check_layer_key
from lorag.llm.adapters.validation import ValidatedAdapter, read_adapter, weights_file
from lorag.llm.adapters.virtual_tokens import VirtualTokens
from lorag.llm.loading import LoadedBase

logger = logging.getLogger(__name__)

__all__ = ["AdapterInfo", "AdapterRegistry"]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AdapterError(f"adapter name must be a non-empty string, got {name!r}")
    if name == BASE_ADAPTER:
        raise AdapterError(f"{BASE_ADAPTER!r} is reserved for the base model")
    check_layer_key(name)
    return name


class AdapterRegistry:
    """Adapters of every kind by name over one base model; thread-safe.

    Args:
        base: The loaded base (``lorag.llm.loading.load_base``).
        max_resident: Most adapters held in memory at once (compositions included); least recently used unpinned,
            idle adapters are evicted beyond it.
        on_base_mismatch: ``"warn"`` (default) or ``"error"`` when an adapter records another base model.
        allow_pickle: Accept ``adapter_model.bin`` (pickle, loaded with ``weights_only=True``) for every adapter;
            per adapter via ``register(..., allow_pickle=True)``.
        wait_timeout_s: How long a request waits for a resident slot when all are pinned or busy.
    """

    def __init__(
        self,
        base: LoadedBase,
        *,
        max_resident: int = 8,
        on_base_mismatch: Literal["warn", "error"] = "warn",
        allow_pickle: bool = False,
        wait_timeout_s: float = 60.0,
    ) -> None:
        if max_resident < 1:
            raise ValueError(f"max_resident must be >= 1, got {max_resident}")
        if on_base_mismatch not in ("warn", "error"):
            raise ValueError(f"on_base_mismatch must be 'warn' or 'error', got {on_base_mismatch!r}")
        self.base = base
        self.max_resident = max_resident
        self.on_base_mismatch = on_base_mismatch
        self.allow_pickle = allow_pickle
        self.wait_timeout_s = wait_timeout_s
        #: Held while the model runs a forward pass or its adapters change; the scheduler shares it.
        self.model_lock = threading.RLock()
        self._state = threading.Condition(threading.RLock())
        self._entries: dict[str, Entry] = {}
        self._lru: OrderedDict[str, None] = OrderedDict()
        self._resident = ResidentAdapters(base.model)
        self.base_version = hashlib.sha256(
            json.dumps([base.fingerprint, base.settings.as_dict()], sort_keys=True).encode()
        ).hexdigest()[:16]

    # ------------------------------------------------------------------ the model to run

    @property
    def model(self) -> Any:
        """The module to call: the peft model when any adapter is resident, else the bare base."""
        return self._resident.model

    @property
    def has_adapters(self) -> bool:
        """Whether any adapter, of any kind, is resident."""
        with self._state:
            return bool(self._lru)

    def route(self, name: str) -> str:
        """The row group a request for resident ``name`` decodes in: its own, or the base's (``"__base__"``) for
        prompt and prefix tuning, whose adapter is in the request's KV cache after prefill."""
        if name == BASE_ADAPTER:
            return name
        with self._state:
            return BASE_ADAPTER if self._entry(name).kind in VIRTUAL_TOKEN_KINDS else name

    def virtual_tokens(self, name: str) -> VirtualTokens | None:
        """The virtual tokens of a resident prompt- or prefix-tuning adapter (None for other kinds)."""
        if name == BASE_ADAPTER:
            return None
        with self._state:
            self._entry(name)
            return self._resident.virtual_tokens(name)

    @contextmanager
    def routed(self, adapter_names: builtins.list[str]) -> Iterator[Any]:
        """The module to call with row ``i`` of the batch going through ``adapter_names[i]`` (``"__base__"``: none).

        Rows grouped by adapter (as the scheduler lays them out) run each group's adapter on its slice (``row_groups``)
        instead of peft's ``adapter_names`` path, which also walks every module of the model twice per call; the LoRA
        layers are listed once per change of adapters. Call with ``model_lock`` held.
        """
        with self._resident.routed(adapter_names) as model:
            yield model

    # ------------------------------------------------------------------ registration

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        pinned: bool = False,
        allow_pickle: bool | None = None,
        load: bool = False,
    ) -> AdapterInfo:
        """Register ``name`` -> adapter directory; loads lazily on first use unless ``load=True``.

        ``pinned=True`` keeps it resident once loaded.

        The directory layout is checked now (cheap); weights are validated when loaded (with ``load=True``, a failed
        load also forgets ``name``). Registering the same name
        with the same path again is a no-op; with another path it is an error (use ``reload``).
        """
        _check_name(name)
        folder = Path(path).expanduser()
        allow = self.allow_pickle if allow_pickle is None else allow_pickle
        weights_file(folder, allow)
        resolved = str(folder.resolve())
        with self._state:
            existing = self._entries.get(name)
            if existing is not None:
                if existing.path == resolved:
                    return existing.info()
                raise AdapterError(
                    f"adapter {name!r} is already registered from {existing.path}; call reload({name!r}, path) "
                    "to replace it or remove() it first"
                )
            self._entries[name] = Entry(name, resolved, pinned=pinned, allow_pickle=allow)
        if load:
            try:
                return self.load(name)
            except BaseException:
                with self._state:  # a register that fails to load leaves the registry as it was
                    self._entries.pop(name, None)
                raise
        return self.info(name)

    def remove(self, name: str) -> None:
        """Unload (if resident) and forget an adapter."""
        self.unload(name)
        with self._state:
            self._entries.pop(name, None)

    def names(self) -> builtins.list[str]:
        with self._state:
            return sorted(self._entries)

    def list(self) -> builtins.list[AdapterInfo]:
        """Every registered adapter, resident or not, by name."""
        with self._state:
            return [self._entries[n].info() for n in sorted(self._entries)]

    def resident(self) -> builtins.list[str]:
        """Resident adapters, least recently used first."""
        with self._state:
            return list(self._lru)

    def info(self, name: str) -> AdapterInfo:
        with self._state:
            return self._entry(name).info()

    def version(self, name: str | None) -> str:
        """Content version of an adapter (loads it if needed), or of the base for ``None``/``"__base__"``."""
        if name in (None, BASE_ADAPTER):
            return self.base_version
        with self.use([name]) as versions:
            return versions[0]

    def pin(self, name: str, pinned: bool = True) -> None:
        """Load an adapter and keep it resident (never evicted), or with ``pinned=False`` make it evictable."""
        if pinned:
            with self.use([name]), self._state:
                self._entry(name).pinned = True
            return
        with self._state:
            self._entry(name).pinned = False
            self._state.notify_all()

    def _entry(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise UnknownAdapterError(f"unknown adapter {name!r}; registered adapters: {known} (or {BASE_ADAPTER!r})")
        return entry

    # ------------------------------------------------------------------ loading and unloading

    def load(self, name: str) -> AdapterInfo:
        """Make ``name`` resident (validating it first); a no-op when it already is."""
        with self.use([name]):
            return self.info(name)

    def reload(self, name: str, path: str | os.PathLike[str] | None = None) -> AdapterInfo:
        """Re-read an adapter from disk (optionally from a new directory); its version follows the new content.

        The new content is validated first; on any error the old adapter stays as it was.
        """
        with self._state:
            entry = self._entry(name)
            if entry.recipe is not None:
                raise AdapterError(f"{name!r} is a composition; compose() it again instead")
            folder = Path(path).expanduser().resolve() if path is not None else Path(str(entry.path))
            allow = entry.allow_pickle
        validated = self._read(folder, allow)
        with self._state:
            entry = self._entry(name)
            if entry.busy:
                raise AdapterBusyError(f"adapter {name!r} is serving {entry.busy} request(s); reload it when idle")
            with self.model_lock:
                if entry.resident:
                    self._take_out(entry)
                entry.path = str(folder)
                self._inject(entry, validated)
            return entry.info()

    def unload(self, name: str) -> None:
        """Free an adapter's weights; it stays registered and loads again on next use."""
        with self._state:
            entry = self._entry(name)
            if not entry.resident:
                return
            if entry.busy:
                raise AdapterBusyError(f"adapter {name!r} is serving {entry.busy} request(s); unload it when idle")
            self._take_out(entry)
            self._state.notify_all()

    @contextmanager
    def use(self, names: Iterable[str | None]) -> Iterator[builtins.list[str]]:
        """Hold adapters resident (not evictable) for the duration; yields their versions in order.

        ``None`` and ``"__base__"`` select the base. Unknown names raise ``UnknownAdapterError`` before anything
        is loaded.
        """
        wanted = [BASE_ADAPTER if n is None else n for n in names]
        with self._state:
            for n in wanted:
                if n != BASE_ADAPTER:
                    self._entry(n)
        acquired: builtins.list[str] = []
        try:
            versions = []
            for n in wanted:
                versions.append(self._acquire(n))
                acquired.append(n)
            yield versions
        finally:
            for n in acquired:
                self._release(n)

    def acquire(self, name: str | None) -> tuple[str, str]:
        """Mark an adapter in use (loading it if needed); returns (name, version). Pair with ``release``."""
        resolved = BASE_ADAPTER if name is None else name
        return resolved, self._acquire(resolved)

    def release(self, name: str) -> None:
        self._release(name)

    def _acquire(self, name: str) -> str:
        if name == BASE_ADAPTER:
            return self.base_version
        with self._state:
            entry = self._entry(name)
            if entry.recipe is not None and compositions.stale(entry, self._entries) and not entry.busy:
                self._take_out(entry)  # a busy one serves its old build to in-flight requests; rebuilt when idle
            if not entry.resident:
                validated = None if entry.recipe is not None else self._read(Path(str(entry.path)), entry.allow_pickle)
                self._make_room(exclude=name)
                with self.model_lock:
                    if validated is None:
                        compositions.build(entry, self._entries, self.use, self._resident)
                    else:
                        self._inject(entry, validated)
            entry.busy += 1
            self._lru.pop(name, None)
            self._lru[name] = None
            assert entry.version is not None
            return entry.version

    def _release(self, name: str) -> None:
        if name == BASE_ADAPTER:
            return
        with self._state:
            entry = self._entries.get(name)
            if entry is not None and entry.busy > 0:
                entry.busy -= 1
            self._state.notify_all()

    def _make_room(self, exclude: str) -> None:
        """Evict LRU adapters until one more fits, waiting for a busy one to finish if all are busy or pinned."""
        deadline = time.monotonic() + self.wait_timeout_s
        while len(self._lru) >= self.max_resident:
            victim = next(
                (n for n in self._lru if n != exclude and not self._entries[n].pinned and not self._entries[n].busy),
                None,
            )
            if victim is not None:
                logger.info("evicting adapter %r (max_resident=%d)", victim, self.max_resident)
                self._take_out(self._entries[victim])
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._state.wait(timeout=remaining):
                raise AdapterBusyError(
                    f"max_resident={self.max_resident} adapters are resident and all are pinned or serving requests "
                    f"({', '.join(self._lru)}); raise max_resident or unpin one"
                )

    # ------------------------------------------------------------------ composition

    def compose(
        self, name: str, weights: Mapping[str, float], *, combination_type: str = "linear", pinned: bool = False
    ) -> AdapterInfo:
        """Register a weighted combination of registered adapters as a named virtual adapter (peft
        ``add_weighted_adapter``). It is built now, rebuilt after eviction, and rebuilt when a source's version
        changes, so its own version always reflects the sources it was built from (``compositions``).

        ``combination_type`` is peft's: ``linear`` (all sources need the same rank), ``cat``, ``svd``, ...
        """
        _check_name(name)
        with self._state:
            compositions.check_recipe(name, weights, self._entries, self._entry)
            self._entries[name] = Entry(
                name, None, pinned=pinned, recipe=dict(weights), combination_type=combination_type
            )
            try:
                return self.load(name)
            except Exception:
                self._entries.pop(name, None)
                raise

    def _read(self, folder: Path, allow_pickle: bool) -> ValidatedAdapter:
        return read_adapter(folder, self.base, allow_pickle=allow_pickle, on_base_mismatch=self.on_base_mismatch)

    # ------------------------------------------------------------------ injection (holds model_lock)

    def _inject(self, entry: Entry, validated: ValidatedAdapter) -> None:
        """Put a validated adapter into the model by its kind; on failure the model is left as it was."""
        try:
            self._resident.inject(entry.name, validated)
        except AdapterError:
            raise
        except Exception as err:
            raise AdapterError(f"loading adapter {entry.name!r} from {entry.path} failed: {err}") from err
        entry.kind = validated.kind
        entry.version = validated.version
        entry.rank = validated.rank
        entry.target_modules = validated.target_modules
        entry.resident = True
        self._lru[entry.name] = None
        logger.info("loaded %s adapter %r (version %s) from %s", entry.kind, entry.name, entry.version, entry.path)

    def _take_out(self, entry: Entry) -> None:
        """Take a resident adapter out of the model; it stays registered (the last LoRA adapter unwraps the base)."""
        with self.model_lock:
            self._resident.delete(entry.name)
        entry.resident = False
        self._lru.pop(entry.name, None)

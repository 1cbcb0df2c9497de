"""``RemoteAdapters``: which of the server's adapters a lorag adapter name selects, found on the server and cached.

The server owns the adapters, so a name is only good if the server has it: vLLM's are checked against
``GET /v1/models`` and llama.cpp's are looked up by GGUF path, file name or stem in ``GET /lora-adapters``, so a
missing adapter fails at the first request that names it, with an error that lists what the server has.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from lorag.llm.adapters import BASE_ADAPTER, UnknownAdapterError
from lorag.llm.remote.errors import LoraUnsupportedError, RemoteStatusError

if TYPE_CHECKING:
    from lorag.llm.remote.engine import RemoteEngine


class RemoteAdapters:
    """The adapters a ``RemoteEngine`` may name: lorag name -> the server's name for it (a served LoRA name, or a
    llama.cpp GGUF path / file name / stem). Resolved against the server lazily and cached; a miss re-reads the
    server once, since both servers can load adapters at run time."""

    def __init__(self, engine: RemoteEngine, mapping: Mapping[str, str] | None = None) -> None:
        self._engine = engine
        self._mapping: dict[str, str] = {}
        self._resolved: dict[str, Any] = {}
        self._loras: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        for name, target in (mapping or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str | os.PathLike[str]) -> None:
        """Map ``name`` to the server's adapter ``target``; the same mapping twice is fine, another is an error."""
        if not isinstance(name, str) or not name or name == BASE_ADAPTER:
            raise ValueError(f"an adapter name must be a non-empty string other than {BASE_ADAPTER!r}, got {name!r}")
        target = os.fspath(target)
        with self._lock:
            known = self._mapping.get(name)
            if known is not None and known != target:
                raise ValueError(f"adapter {name!r} is already mapped to {known!r}, not {target!r}")
            self._mapping[name] = target

    def names(self) -> list[str]:
        """The registered lorag names."""
        return sorted(self._mapping)

    def target(self, name: str) -> str:
        """The server's name for ``name`` (itself when unmapped)."""
        return self._mapping.get(name, name)

    def resolve(self, name: str | None) -> Any:
        """What a request for ``name`` sends: the served model name, or llama.cpp's lora id (None: the base).

        Raises:
            UnknownAdapterError: The server has no such adapter (the message lists those it has).
            LoraUnsupportedError: The server cannot apply adapters per request.
        """
        if name is None or name == BASE_ADAPTER:
            return None
        with self._lock:
            if name in self._resolved:
                return self._resolved[name]
        value = self._resolve_on_server(name, self.target(name))
        with self._lock:
            self._resolved[name] = value
        return value

    def version(self, name: str | None) -> str:
        """The server's identity of an adapter, for cache keys (see ``lorag.llm.remote``); resolves it first."""
        resolved = self.resolve(name)
        return f"{self._engine.backend}@{self._engine.base_url}#{'base' if resolved is None else resolved}"

    def lora_scales(self, lora_id: int | None) -> list[dict[str, Any]]:
        """llama.cpp's per-request ``lora`` list: the chosen id at 1, or every loaded id at 0 for the base (an empty
        list means the server's global scales: 1 for each ``--lora``, even under ``--lora-init-without-apply``)."""
        if lora_id is not None:
            return [{"id": lora_id, "scale": 1.0}]
        try:
            loaded = self._lora_list()
        except LoraUnsupportedError:  # a server without adapters serves the base as it is
            return []
        return [{"id": int(entry["id"]), "scale": 0.0} for entry in loaded]

    def _resolve_on_server(self, name: str, target: str) -> Any:
        engine = self._engine
        if engine.backend == "llama.cpp":
            return self._lora_id(name, target)
        if engine.backend == "vllm":
            models: list[dict[str, Any]] = []
            for _ in range(2):  # a miss re-reads: adapters load at run time (/v1/load_lora_adapter)
                models = engine._models()
                if any(m.get("id") == target for m in models):
                    return target
            loras = [m["id"] for m in models if m.get("parent")]
            if not loras:
                raise LoraUnsupportedError(
                    f"the vLLM server at {engine.base_url} serves no LoRA adapters, so adapter {name!r} cannot be "
                    f"chosen; start it with --enable-lora --lora-modules {target}=ADAPTER_DIR"
                )
            raise UnknownAdapterError(
                f"the vLLM server at {engine.base_url} has no adapter {target!r} (for {name!r}); it serves {loras}"
            )
        return target

    def _lora_list(self, refresh: bool = False) -> list[dict[str, Any]]:
        """``GET /lora-adapters``, read once (llama-server loads its adapters at start-up only)."""
        with self._lock:
            if self._loras is not None and not refresh:
                return self._loras
        server_root = self._engine.server_root
        try:
            listing = self._engine._get("/lora-adapters")
        except RemoteStatusError as err:
            if err.status_code in (404, 405, 501):
                raise LoraUnsupportedError(
                    f"the server at {server_root} has no /lora-adapters endpoint ({err.status_code}): it is not "
                    f"llama.cpp's llama-server; for vLLM use backend='vllm', else backend='openai-compatible'"
                ) from err
            raise
        if not isinstance(listing, list):
            raise LoraUnsupportedError(f"{server_root}/lora-adapters answered {listing!r}, not a list")
        loaded = [entry for entry in listing if isinstance(entry, dict)]
        with self._lock:
            self._loras = loaded
        return loaded

    def _lora_id(self, name: str, target: str) -> int:
        loaded: list[dict[str, Any]] = []
        for attempt in range(2):
            loaded = self._lora_list(refresh=attempt > 0)
            for entry in loaded:
                path = str(entry.get("path", ""))
                if target in (path, PurePath(path).name, PurePath(path).stem, str(entry.get("id"))):
                    return int(entry["id"])
        server_root = self._engine.server_root
        if not loaded:
            raise LoraUnsupportedError(
                f"the llama-server at {server_root} loaded no LoRA adapters, so adapter {name!r} cannot be "
                f"chosen; start it with --lora {target if target.endswith('.gguf') else name + '.gguf'} "
                f"(lorag export-adapter --format gguf)"
            )
        served = [f"{e.get('id')}: {e.get('path')}" for e in loaded]
        raise UnknownAdapterError(
            f"the llama-server at {server_root} has no adapter {target!r} (for {name!r}); it loaded {served}"
        )

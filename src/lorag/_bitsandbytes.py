"""bitsandbytes without the network: imported lazily, and run with the Hugging Face hub offline.

bitsandbytes 0.48+ looks up an optional faster CPU 4-bit kernel on the hub (``kernels-community``, through the
``kernels`` package) when it is imported on a CPU with AVX512-BF16: connections to huggingface.co, then a warning
when they fail. peft imports bitsandbytes whenever it is imported, and transformers imports peft, which
sentence-transformers imports: so every lorag command that embeds (``lorag index``, no LLM involved) reached the
network and printed that warning. ``install()``, run at ``import lorag``, makes ``import bitsandbytes`` give a lazy
module: bitsandbytes' own import runs when one of its attributes is first used (a quantized model loads), and it
runs with the hub offline, so the lookup fails at once and bitsandbytes keeps its bundled kernel, the one lorag
measures. Import bitsandbytes before lorag to let it fetch that kernel.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

_NAME = "bitsandbytes"


class _QuietKernelFallback(logging.Filter):
    """bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" warning, as a debug message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "kernels-community" in record.getMessage():
            logger.debug("bitsandbytes uses its bundled CPU 4-bit kernel: %s", record.getMessage())
            return False
        return True


@contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face hub offline in this process for the duration, as ``HF_HUB_OFFLINE=1`` would make it."""
    import huggingface_hub.constants as constants  # imported first, so it reads the user's own setting

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


class _OfflineLoader(importlib.abc.Loader):
    """bitsandbytes' own loader, run with the hub offline and its kernel-fallback warning quieted."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        quiet = _QuietKernelFallback()
        cpu_ops = logging.getLogger("bitsandbytes.backends.cpu.ops")
        kernels = logging.getLogger("kernels")  # "Skipping publisher trust check ... offline mode"
        saved_level = kernels.level
        cpu_ops.addFilter(quiet)
        kernels.setLevel(logging.ERROR)
        try:
            with hub_offline():
                self._loader.exec_module(module)
        finally:
            cpu_ops.removeFilter(quiet)
            kernels.setLevel(saved_level)

    def __getattr__(self, name: str) -> Any:  # get_data, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _NAME:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(_OfflineLoader(spec.loader))
        return spec


def install() -> None:
    """Route every later ``import bitsandbytes`` in this process through the lazy, offline loader (once)."""
    if _NAME not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def load() -> ModuleType:
    """bitsandbytes, fully imported (offline when lorag imports it first)."""
    from lorag._imports import require

    module = require(_NAME, purpose="4-bit and 8-bit base models")
    _ = module.__version__  # runs a lazy import now, so its errors surface here
    return module

"""lorag: QLoRA adapters, distilled embedders, hybrid retrieval and chunking for LangChain and LlamaIndex.

The core is framework-free; ``langchain_lorag`` and ``llama_index.*.lorag`` wrap it as native components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from lorag import _bitsandbytes

# Before anything imports peft (which imports bitsandbytes): no hub lookup, no import cost unless quantizing.
_bitsandbytes.install()

try:
    __version__ = version("lorag")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]

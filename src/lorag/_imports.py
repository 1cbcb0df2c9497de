"""Optional-dependency checks with one install hint, so a missing extra names the exact fix."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Which lorag extra brings each optional module.
EXTRA_FOR_MODULE: dict[str, str] = {
    "torch": "models",
    "transformers": "models",
    "sentence_transformers": "models",
    "faiss": "models",
    "peft": "models",
    "bitsandbytes": "models",
    "gguf": "models",
    "safetensors": "models",
    "pypdf": "models",
    "datasets": "train",
    "matplotlib": "train",
    "trl": "train",
    "pytrec_eval": "eval",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",
    "numba": "fast",
    "langchain_core": "langchain",
    "llama_index.core": "llamaindex",
}


def is_available(module: str) -> bool:
    """True when ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise ImportError that says which ``pip install`` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRA_FOR_MODULE.get(module, "all")
        what = f" for {purpose}" if purpose else ""
        raise ImportError(f'{module} is needed{what} but is not installed: pip install "lorag[{extra}]"') from err

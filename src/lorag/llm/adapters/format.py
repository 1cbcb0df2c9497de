"""What an adapter directory is: its file names, the kinds of adapter lorag serves, and the errors about them.

Defined once here so the registry, the validation and the kind modules spell them the same way.
"""

from __future__ import annotations

#: The name that selects the bare base model in a request.
BASE_ADAPTER = "__base__"
CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter_model.safetensors"
PICKLE_FILE = "adapter_model.bin"
METADATA_FILE = "training_metadata.json"

#: ``adapter_config.json``'s ``peft_type`` -> the kind's name (the same names as ``lorag train-adapter --method``).
KINDS: dict[str, str] = {
    "LORA": "lora",
    "IA3": "ia3",
    "BOTTLENECK": "bottleneck",
    "PROMPT_TUNING": "prompt-tuning",
    "PREFIX_TUNING": "prefix-tuning",
}
#: Kinds that change what some base layers compute for their rows (forward hooks, ``lorag.llm.adapters.layer_effects``).
LAYER_KINDS: tuple[str, ...] = ("ia3", "bottleneck")
#: Kinds that put trained virtual tokens before the prompt; after prefill they live in the request's KV cache
#: (``lorag.llm.adapters.virtual_tokens``), so their decode steps run the bare base layers.
VIRTUAL_TOKEN_KINDS: tuple[str, ...] = ("prompt-tuning", "prefix-tuning")


class AdapterError(ValueError):
    """An adapter request or adapter directory that cannot be served; the message says what and why."""


class UnknownAdapterError(AdapterError, LookupError):
    """A request named an adapter that is not registered."""


class AdapterBusyError(AdapterError):
    """The adapter is serving requests (or is pinned) and cannot be changed now."""


class BaseMismatchWarning(UserWarning):
    """The adapter records a different base model than the one loaded (shapes matched)."""

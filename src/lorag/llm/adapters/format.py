"""What an adapter folder is: its file names, the metadata key for the base, the kinds lorag serves, saved weight names.

Defined once here, so the registry, the validation, the injection and the trainer (``lorag.training``) spell them the
same way (as peft keeps its file names in ``peft.utils.constants``).
"""

from __future__ import annotations

#: The name that selects the bare base model in a request.
BASE_ADAPTER = "__base__"
CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter_model.safetensors"
PICKLE_FILE = "adapter_model.bin"
#: lorag's trainer writes it beside the peft files: how the adapter was trained, and on which base.
METADATA_FILE = "training_metadata.json"
#: ``training_metadata.json``'s key for the content hash of the base directory the adapter was trained on.
FINGERPRINT_KEY = "base_model_fingerprint"

#: ``adapter_config.json``'s ``peft_type`` -> the kind's name (the same names as ``lorag train-adapter --method``).
KINDS: dict[str, str] = {
    "LORA": "lora",
    "IA3": "ia3",
    "BOTTLENECK": "bottleneck",
    "PROMPT_TUNING": "prompt-tuning",
    "PREFIX_TUNING": "prefix-tuning",
}
#: Kinds that change what some base layers compute for their rows (forward hooks, ``layer_effects``).
LAYER_KINDS: tuple[str, ...] = ("ia3", "bottleneck")
#: Kinds that put trained virtual tokens before the prompt; after prefill they live in the request's KV cache
#: (``virtual_tokens``), so their decode steps run the bare base layers.
VIRTUAL_TOKEN_KINDS: tuple[str, ...] = ("prompt-tuning", "prefix-tuning")

#: Saved weight names per layer kind: the suffix after the module path.
LORA_WEIGHTS = ("lora_A.weight", "lora_B.weight")
IA3_WEIGHTS = ("ia3_l",)
BOTTLENECK_WEIGHTS = ("bottleneck_down.weight", "bottleneck_down.bias", "bottleneck_up.weight", "bottleneck_up.bias")
#: The one tensor peft saves for prompt and prefix tuning.
VIRTUAL_TOKENS_WEIGHT = "prompt_embeddings"

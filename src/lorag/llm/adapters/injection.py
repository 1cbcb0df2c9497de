"""Putting validated adapters into the base by kind, and taking them out: the only module that touches peft's
internals (``PeftModel`` wrapping, ``update_layer``, ``init_empty_weights``, the LoRA layers' attributes and hooks).

``ResidentAdapters`` holds what the base carries, by adapter name: LoRA adapters in peft's LoRA layers
(``LoraLayers``), IA3 and bottleneck adapters as hooks (``layer_effects``), prompt and prefix tuning as virtual tokens
(``virtual_tokens``). The registry calls it with ``model_lock`` held, after ``validation`` has checked the adapter.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lorag.llm.adapters.errors import AdapterError
from lorag.llm.adapters.format import LAYER_KINDS, LORA_WEIGHTS
from lorag.llm.adapters.layer_effects import LayerEffect
from lorag.llm.adapters.row_groups import active_groups, grouping
from lorag.llm.adapters.validation import ValidatedAdapter, split_key
from lorag.llm.adapters.virtual_tokens import VirtualTokens


@functools.cache
def lora_attribute_names() -> frozenset[str]:
    """What peft's LoRA layers name their per-adapter modules and settings (``lora_A``, ``scaling``, ...)."""
    from peft.tuners.lora import LoraLayer

    return frozenset({"base_layer", *LoraLayer.adapter_layer_names, *LoraLayer.other_param_names})


def check_layer_key(name: str) -> None:
    """Refuse an adapter name peft cannot key the adapter's layers and parameters by."""
    if "." in name:
        raise AdapterError(f"adapter name {name!r} may not contain '.' (peft uses it in module paths)")
    import torch

    if hasattr(torch.nn.ModuleDict(), name):  # peft keys each adapter's layers by name in ModuleDicts
        raise AdapterError(f"adapter name {name!r} is taken by torch.nn.Module (an attribute); choose another name")
    if name in lora_attribute_names():  # parameter paths would read ".lora_A.lora_A." and match every adapter
        raise AdapterError(
            f"adapter name {name!r} is the name of a LoRA layer attribute in peft "
            f"({', '.join(sorted(lora_attribute_names()))}); choose another name"
        )


@functools.cache
def _update_layer_takes_config() -> bool:
    """peft releases before the config-based ``LoraLayer.update_layer`` (``config=``) always take ``add_adapter``."""
    from peft.tuners.lora import LoraLayer

    return "config" in inspect.signature(LoraLayer.update_layer).parameters


def can_reuse_layers(config: Any) -> bool:
    """Whether an adapter with this config may be added straight to LoRA layers another adapter with the same
    targets made; patterns and layer selections go through peft's ``add_adapter``, which matches names again."""
    if not _update_layer_takes_config():
        return False
    if config.rank_pattern or config.alpha_pattern or config.layers_to_transform is not None:
        return False
    return not (getattr(config, "exclude_modules", None) or getattr(config, "target_parameters", None))


class LoraLayers:
    """The base's LoRA adapters: the peft model wrapping it (None while no LoRA adapter is resident) and its layers.

    Args:
        base_model: The loaded base; peft wraps its modules in place.
    """

    def __init__(self, base_model: Any) -> None:
        self.base_model = base_model
        self.peft: Any = None
        self._layers: tuple[Any, ...] | None = None  # peft's LoRA layers, found again after any change
        self._hooks: list[Any] = []

    def hooked_layers(self) -> tuple[Any, ...]:
        """The model's LoRA layers, each with the ``add_group_deltas`` hook (listed once per change of adapters)."""
        if self.peft is None:
            return ()
        if self._layers is None:
            from peft.tuners.lora import LoraLayer

            layers: tuple[Any, ...] = tuple(m for m in self.base_model.modules() if isinstance(m, LoraLayer))
            self._hooks = [layer.register_forward_hook(add_group_deltas) for layer in layers]
            self._layers = layers
        return self._layers

    def _forget_layers(self) -> None:
        """Before the adapters change: drop the hooks; the next ``hooked_layers`` lists the layers again."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._layers = None

    def inject(self, name: str, validated: ValidatedAdapter, *, reuse_layers: bool) -> None:
        """Add a validated LoRA adapter; on any failure the model is left as it was.

        ``reuse_layers``: a resident adapter wrapped exactly these modules for the same targets, so peft's per-layer
        ``update_layer`` suffices (``add_adapter`` would match every module name again: most of a cold load's time).
        """
        import torch
        from peft import PeftModel

        created = self.peft is None
        self._forget_layers()
        try:
            # low_cpu_mem_usage: peft creates the LoRA layers on the meta device (no random init, no copies) and the
            # validated tensors are assigned below. peft's set_peft_model_state_dict is avoided on purpose: it calls
            # state_dict() on the model, which makes bitsandbytes unpack CPU-packed 4-bit weights, and the repack on
            # the next forward rounds the scales again (bnb 0.50), so the base's outputs would drift.
            if created:
                self.peft = PeftModel(self.base_model, validated.config, adapter_name=name, low_cpu_mem_usage=True)
            elif reuse_layers and can_reuse_layers(validated.config):
                self._add_to_existing_layers(name, validated)
            else:
                self.peft.add_adapter(name, validated.config, low_cpu_mem_usage=True)
            filled = set()
            for key, tensor in validated.state_dict.items():
                path, kind = split_key(key, LORA_WEIGHTS)
                layer: Any = self.base_model.get_submodule(path)
                holder = (layer.lora_A if kind == "lora_A.weight" else layer.lora_B)[name]
                if holder.weight.shape != tensor.shape:
                    raise AdapterError(
                        f"adapter {name!r}: {key} has shape {tuple(tensor.shape)}, the config makes "
                        f"{tuple(holder.weight.shape)} (rank or rank_pattern mismatch)"
                    )
                device = layer.get_base_layer().weight.device
                holder.weight = torch.nn.Parameter(tensor.to(device=device, dtype=torch.float32), requires_grad=False)
                filled.add(id(holder.weight))
            # peft may also have created layers for targets the weights do not cover
            unfilled = [n for n, p in self.peft.named_parameters() if f".{name}." in n and id(p) not in filled]
            if unfilled:
                raise AdapterError(f"adapter {name!r} has no weights for {len(unfilled)} LoRA layers: {unfilled[:3]}")
            self.peft.eval()
        except Exception:
            self._rollback(name, created)
            raise

    def add_weighted(self, name: str, weights: dict[str, float], combination_type: str) -> None:
        """peft's ``add_weighted_adapter`` of resident LoRA adapters under a new name."""
        self._forget_layers()
        try:
            self.peft.add_weighted_adapter(
                adapters=list(weights),
                weights=[float(w) for w in weights.values()],
                adapter_name=name,
                combination_type=combination_type,
            )
            self.peft.eval()
        except Exception:
            self.delete(name)
            raise

    def _add_to_existing_layers(self, name: str, validated: ValidatedAdapter) -> None:
        """peft's own per-layer step (``LoraLayer.update_layer``) on each module, weights created empty (meta)."""
        from peft.utils.integrations import init_empty_weights

        config = validated.config
        self.peft.peft_config[name] = config
        with init_empty_weights():
            for path in sorted(validated.module_paths):
                layer: Any = self.base_model.get_submodule(path)
                layer.update_layer(name, config.r, lora_alpha=config.lora_alpha, config=config, target_name=path)

    def _rollback(self, name: str, created: bool) -> None:
        self._forget_layers()
        if self.peft is None:
            return
        if created:
            self.peft.unload()
            self.peft = None
        else:
            self.delete(name)

    def delete(self, name: str) -> None:
        """Remove an adapter's layers; the last one unwraps the base back to plain modules."""
        if self.peft is None or name not in self.peft.peft_config:
            return
        self._forget_layers()
        if len(self.peft.peft_config) == 1:
            self.peft.unload()
            self.peft = None
        else:
            if name in self.peft.active_adapters:
                other = next(n for n in self.peft.peft_config if n != name)
                self.peft.set_adapter(other)
            self.peft.delete_adapter(name)
        self.base_model.eval()


def add_group_deltas(layer: Any, args: tuple[Any, ...], output: Any) -> Any:
    """Forward hook on a peft ``LoraLayer``: inside ``grouped_rows``, add each group's LoRA product to its rows."""
    groups = active_groups()
    if groups is None:
        return None
    x = args[0]
    if x.shape[0] != groups[-1][2]:
        raise RuntimeError(f"a LoRA layer got {x.shape[0]} rows, the batch has {groups[-1][2]}")
    for name, start, stop in groups:
        if name not in layer.lora_A:  # the bare base ("__base__"), or an adapter that does not target this layer
            continue
        lora_a = layer.lora_A[name]
        rows = x[start:stop]
        if rows.dtype != lora_a.weight.dtype:
            rows = rows.to(lora_a.weight.dtype)
        delta = layer.lora_B[name](lora_a(layer.lora_dropout[name](rows))) * layer.scaling[name]
        output[start:stop] += delta.to(output.dtype)
    return output


@contextmanager
def grouped_rows(layers: Sequence[Any], adapter_names: Sequence[str]) -> Iterator[None]:
    """Within the block, row ``i`` of every forward pass goes through ``adapter_names[i]``; ``layers`` are the model's
    LoRA layers, each carrying the ``add_group_deltas`` hook (IA3 and bottleneck hooks read the groups too)."""
    with grouping(adapter_names):
        for layer in layers:
            layer._disable_adapters = True  # the layer's own forward runs the base layer only
        try:
            yield
        finally:
            for layer in layers:
                layer._disable_adapters = False


class ResidentAdapters:
    """The adapters the base carries, of every kind, by name; what the model runs with them.

    Args:
        base_model: The loaded base; peft wraps its modules in place, hooks go on its layers.
    """

    def __init__(self, base_model: Any) -> None:
        self.base_model = base_model
        self.lora = LoraLayers(base_model)
        self._effects: dict[str, LayerEffect] = {}
        self._virtual: dict[str, VirtualTokens] = {}
        #: Each LoRA adapter loaded from a folder -> (target modules, module paths): the layers it wrapped.
        self._lora_layout: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}

    @property
    def model(self) -> Any:
        """The module to call: the peft model when a LoRA adapter is resident, else the bare base."""
        return self.lora.peft if self.lora.peft is not None else self.base_model

    def virtual_tokens(self, name: str) -> VirtualTokens | None:
        """The virtual tokens of a resident prompt- or prefix-tuning adapter (None for other kinds)."""
        return self._virtual.get(name)

    def inject(self, name: str, validated: ValidatedAdapter) -> None:
        """Put a validated adapter into the model by its kind; on failure the model is left as it was."""
        if validated.kind == "lora":
            layout = (validated.target_modules, validated.module_paths)
            # a resident LoRA adapter with the same targets already wrapped exactly these modules
            self.lora.inject(name, validated, reuse_layers=layout in self._lora_layout.values())
            self._lora_layout[name] = layout
        elif validated.kind in LAYER_KINDS:
            self._effects[name] = LayerEffect(self.base_model, name, validated)
        else:
            self._virtual[name] = VirtualTokens.from_validated(self.base_model, validated)

    def add_weighted(self, name: str, weights: dict[str, float], combination_type: str) -> None:
        """peft's ``add_weighted_adapter`` of resident LoRA adapters under a new name."""
        self.lora.add_weighted(name, weights, combination_type)

    def delete(self, name: str) -> None:
        """Take an adapter out of the model; the last LoRA adapter unwraps the base back to plain modules."""
        effect = self._effects.pop(name, None)
        if effect is not None:
            effect.remove()
            return
        if self._virtual.pop(name, None) is not None:
            return
        self._lora_layout.pop(name, None)
        self.lora.delete(name)

    @contextmanager
    def routed(self, adapter_names: Sequence[str]) -> Iterator[Any]:
        """The module to call with row ``i`` of the batch going through ``adapter_names[i]`` (see ``row_groups``)."""
        with grouped_rows(self.lora.hooked_layers(), adapter_names):
            yield self.base_model  # peft wrapped its modules in place: the base model now holds the LoRA layers

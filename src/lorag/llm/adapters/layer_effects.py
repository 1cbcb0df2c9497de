"""IA3 and bottleneck adapters applied to their own rows of a batch, by forward hooks on the base's layers.

peft gives each module one tuner wrapper per method, so an IA3 or bottleneck layer cannot sit on a module LoRA has
already wrapped, and peft routes rows to adapters (``adapter_names``) for LoRA only. Here each resident adapter
hooks the plain base layers it targets (under any LoRA wrapper, which then calls them) and, in a forward pass over
row groups (``row_groups``), changes only the rows of its own group, with peft's arithmetic:

- IA3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning"):
  ``base(x) * l`` on keys and values, ``base(x * l)`` on feed-forward layers (``peft.tuners.ia3.layer.Linear``);
- bottleneck (Houlsby et al., 2019): ``h + up(act(down(h)))`` on ``h = base(x)`` (``lorag.peft_bottleneck``).

Rows of other groups are left untouched, so requests for other adapters in the same forward pass are unaffected.
Weights are held in float32 on the base layer's device, as peft casts adapter weights it loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lorag.llm.adapters.format import BOTTLENECK_WEIGHTS, IA3_WEIGHTS
from lorag.llm.adapters.row_groups import rows_of
from lorag.llm.adapters.validation import ValidatedAdapter, is_feedforward, plain_layer, split_key

if TYPE_CHECKING:
    import torch

Hook = Callable[..., Any]


class LayerEffect:
    """A resident IA3 or bottleneck adapter: the hooks that apply it to its rows. ``remove()`` takes it out."""

    def __init__(self, model: Any, name: str, validated: ValidatedAdapter) -> None:
        self.handles: list[Any] = []
        build = _ia3_hooks if validated.kind == "ia3" else _bottleneck_hooks
        try:
            for path, (pre_hook, hook) in build(model, name, validated).items():
                layer = plain_layer(model, path)
                if pre_hook is not None:
                    self.handles.append(layer.register_forward_pre_hook(pre_hook))
                if hook is not None:
                    self.handles.append(layer.register_forward_hook(hook))
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _weights_by_layer(model: Any, validated: ValidatedAdapter, suffixes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    import torch

    by_layer: dict[str, dict[str, Any]] = {}
    for key, tensor in validated.state_dict.items():
        path, suffix = split_key(key, suffixes)
        device = plain_layer(model, path).weight.device
        by_layer.setdefault(path, {})[suffix] = tensor.to(device=device, dtype=torch.float32)
    return by_layer


def _ia3_hooks(model: Any, name: str, validated: ValidatedAdapter) -> dict[str, tuple[Hook | None, Hook | None]]:
    hooks: dict[str, tuple[Hook | None, Hook | None]] = {}
    for path, weights in _weights_by_layer(model, validated, IA3_WEIGHTS).items():
        scale = weights[IA3_WEIGHTS[0]].flatten()
        if is_feedforward(validated.config, path):
            hooks[path] = (_scale_input(name, scale), None)
        else:
            hooks[path] = (None, _scale_output(name, scale))
    return hooks


def _scale_input(name: str, scale: torch.Tensor) -> Hook:
    def pre_hook(layer: Any, args: tuple[Any, ...]) -> Any:
        x = args[0]
        rows = rows_of(name, x.shape[0])
        if not rows:
            return None
        x = x.clone()
        for start, stop in rows:
            x[start:stop] = (x[start:stop].to(scale.dtype) * scale).to(x.dtype)
        return (x, *args[1:])

    return pre_hook


def _scale_output(name: str, scale: torch.Tensor) -> Hook:
    def hook(layer: Any, args: tuple[Any, ...], output: Any) -> Any:
        for start, stop in rows_of(name, output.shape[0]):
            output[start:stop] = (output[start:stop] * scale).to(output.dtype)
        return output

    return hook


def _bottleneck_hooks(model: Any, name: str, validated: ValidatedAdapter) -> dict[str, tuple[Hook | None, Hook | None]]:
    from transformers.activations import ACT2FN

    activation = ACT2FN[validated.config.non_linearity]
    return {
        path: (None, _add_bottleneck(name, weights, activation))
        for path, weights in _weights_by_layer(model, validated, BOTTLENECK_WEIGHTS).items()
    }


def _add_bottleneck(name: str, weights: dict[str, Any], activation: Any) -> Hook:
    import torch.nn.functional as F

    down_w, down_b = weights["bottleneck_down.weight"], weights["bottleneck_down.bias"]
    up_w, up_b = weights["bottleneck_up.weight"], weights["bottleneck_up.bias"]

    def hook(layer: Any, args: tuple[Any, ...], output: Any) -> Any:
        for start, stop in rows_of(name, output.shape[0]):
            h = output[start:stop].to(down_w.dtype)
            delta = F.linear(activation(F.linear(h, down_w, down_b)), up_w, up_b)
            output[start:stop] += delta.to(output.dtype)
        return output

    return hook

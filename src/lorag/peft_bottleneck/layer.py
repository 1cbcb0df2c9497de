"""``BottleneckLayer``: the adapter bookkeeping; ``Linear``: a projection whose output passes a bottleneck."""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.activations import ACT2FN

from lorag.peft_bottleneck.config import BottleneckConfig


class BottleneckLayer(BaseTunerLayer):
    """Per-adapter down/up projections around one base projection (peft keeps the active-adapter state)."""

    adapter_layer_names: tuple[str, ...] = ("bottleneck_down", "bottleneck_up")
    other_param_names: tuple[str, ...] = ("bottleneck_act", "bottleneck_dropout")

    def __init__(self, base_layer: nn.Module, **kwargs: Any) -> None:
        self.base_layer = base_layer
        self.bottleneck_down = nn.ModuleDict({})
        self.bottleneck_up = nn.ModuleDict({})
        self.bottleneck_act: dict[str, str] = {}
        self.bottleneck_dropout = nn.ModuleDict({})
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self.kwargs = kwargs
        base: Any = self.get_base_layer()
        self.in_features: int = base.in_features
        self.out_features: int = base.out_features

    def update_layer(self, adapter_name: str, config: BottleneckConfig) -> None:
        width = self.out_features // config.reduction_factor
        if width < 1:
            raise ValueError(
                f"reduction_factor {config.reduction_factor} leaves no bottleneck on a layer of "
                f"{self.out_features} features; use a factor of at most {self.out_features}"
            )
        down, up = nn.Linear(self.out_features, width), nn.Linear(width, self.out_features)
        if config.init_weights:
            nn.init.zeros_(up.weight)
            nn.init.zeros_(up.bias)
        self.bottleneck_down[adapter_name] = down
        self.bottleneck_up[adapter_name] = up
        self.bottleneck_act[adapter_name] = config.non_linearity
        self.bottleneck_dropout[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)


class Linear(nn.Module, BottleneckLayer):
    """``y = h + up(act(down(dropout(h))))`` with ``h = base(x)``; any base with ``out_features`` (4-bit too)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: BottleneckConfig, **kwargs: Any) -> None:
        super().__init__()
        BottleneckLayer.__init__(self, base_layer, **kwargs)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise NotImplementedError("a bottleneck adapter is non-linear, so it cannot be merged into the base weights")

    def unmerge(self) -> None:
        raise NotImplementedError("a bottleneck adapter is never merged, so there is nothing to unmerge")

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters:
            return result
        for name in self.active_adapters:
            if name not in self.bottleneck_down:
                continue
            down = self.bottleneck_down[name]
            h = self._cast_input_dtype(result, next(down.parameters()).dtype)
            h = self.bottleneck_dropout[name](h)
            delta = self.bottleneck_up[name](ACT2FN[self.bottleneck_act[name]](down(h)))
            result = result + delta.to(result.dtype)
        return result

    def __repr__(self) -> str:
        return "bottleneck." + super().__repr__()

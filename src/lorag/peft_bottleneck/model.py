"""``BottleneckModel``: peft's ``BaseTuner`` wrapping the chosen sublayer projections in ``Linear``."""

from __future__ import annotations

from typing import Any

from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

from lorag.peft_bottleneck.config import BottleneckConfig
from lorag.peft_bottleneck.layer import BottleneckLayer, Linear

PREFIX = "bottleneck_"


class BottleneckModel(BaseTuner):
    """Bottleneck adapters (Houlsby et al., 2019, "Parameter-Efficient Transfer Learning for NLP") as a peft tuner.

    peft's ``BaseTuner`` does the injection, enable/disable, ``set_adapter`` and ``delete_adapter``; this class only
    picks the target modules from the placement and builds the wrapped layer.
    """

    prefix: str = PREFIX
    tuner_layer_cls = BottleneckLayer
    target_module_mapping: dict[str, list[str]] = {}  # noqa: RUF012  # targets come from the placement instead

    def _prepare_adapter_config(self, peft_config: Any, model_config: dict[str, Any]) -> Any:
        if peft_config.target_modules is None:
            peft_config.target_modules = peft_config.targets_for(model_config.get("model_type", "unknown"))
        return peft_config

    def _create_and_replace(
        self,
        peft_config: PeftConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        if not isinstance(peft_config, BottleneckConfig):
            raise TypeError(f"BottleneckModel needs a BottleneckConfig, got {type(peft_config).__name__}")
        config = peft_config
        if isinstance(target, BottleneckLayer):
            target.update_layer(adapter_name, config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not (hasattr(base, "in_features") and hasattr(base, "out_features")):
            raise ValueError(
                f"bottleneck adapters wrap linear projections; {current_key!r} is a {type(base).__name__}: "
                "choose target_modules that are linear layers"
            )
        new_module = Linear(target, adapter_name, config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

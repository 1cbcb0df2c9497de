"""Bottleneck adapters (Houlsby / Pfeiffer placement) as a peft method, registered with peft on import.

Why a peft method and not AdapterHub: AdapterHub's ``adapters`` package implements these, but pins
``transformers~=4.57`` and cannot install beside lorag's transformers 5 stack. Registered through peft's own
``register_peft_method``, a bottleneck adapter is saved and loaded by ``PeftModel.save_pretrained`` /
``from_pretrained`` like LoRA or IA3: ``adapter_config.json`` (``"peft_type": "BOTTLENECK"``) and
``adapter_model.safetensors``, so lorag's adapter registry and trainer treat it like any other kind.

peft's registration needs a member of its ``PeftType`` enum, which has no public way to grow, so
``_add_peft_type`` adds one the way ``Enum`` builds its own members; importing this package (which lorag's trainer
and registry do) is all a process needs before loading a bottleneck adapter.
"""

from __future__ import annotations

from peft.utils import PeftType, register_peft_method

from lorag.peft_bottleneck.config import PEFT_TYPE_NAME, PLACEMENTS, BottleneckConfig
from lorag.peft_bottleneck.model import PREFIX, BottleneckModel


def _add_peft_type(name: str) -> None:
    """Add ``name`` to ``peft.PeftType`` (idempotent), so ``register_peft_method`` accepts it."""
    if name in PeftType.__members__:
        return
    member = str.__new__(PeftType, name)
    member._name_ = name
    member._value_ = name
    type.__setattr__(PeftType, name, member)
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    PeftType._member_names_.append(name)


def _register() -> None:
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    _add_peft_type(PEFT_TYPE_NAME)
    if PeftType(PEFT_TYPE_NAME) not in PEFT_TYPE_TO_TUNER_MAPPING:
        register_peft_method(
            name=PEFT_TYPE_NAME.lower(), config_cls=BottleneckConfig, model_cls=BottleneckModel, prefix=PREFIX
        )


_register()

__all__ = ["PEFT_TYPE_NAME", "PLACEMENTS", "BottleneckConfig", "BottleneckModel"]

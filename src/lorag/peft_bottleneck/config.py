"""``BottleneckConfig``: where the bottleneck adapters go and how wide they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from peft.config import PeftConfig
from peft.utils import PeftType

#: The peft type name this package registers (``adapter_config.json``'s ``peft_type``).
PEFT_TYPE_NAME = "BOTTLENECK"

#: Houlsby et al. (2019) put an adapter after the attention output and after the feed-forward output of every
#: block; Pfeiffer et al. (2021, AdapterFusion) keep only the feed-forward one, at about half the parameters.
PLACEMENTS: tuple[str, ...] = ("houlsby", "pfeiffer")

#: The sublayer output projections per architecture: (attention output, feed-forward output).
SUBLAYER_OUTPUTS: dict[str, tuple[str, str]] = {
    model_type: ("o_proj", "down_proj")
    for model_type in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "olmo2")
}


@dataclass
class BottleneckConfig(PeftConfig):
    """A bottleneck adapter ``h + up(act(down(h)))`` on the output ``h`` of chosen sublayer projections.

    Args:
        placement: ``"houlsby"`` (after attention and after the feed-forward block) or ``"pfeiffer"`` (after the
            feed-forward block only). Used to pick ``target_modules`` when they are not given.
        reduction_factor: The bottleneck is ``out_features // reduction_factor`` wide (AdapterHub's default 16).
        non_linearity: A ``transformers.activations.ACT2FN`` name between the down and up projections.
        dropout: Dropout on the adapter's input.
        target_modules: Module names (or a regex) to wrap; ``None`` derives them from ``placement`` for the
            architectures in ``SUBLAYER_OUTPUTS``.
        init_weights: Zero the up projection so a new adapter is the identity (Houlsby's near-identity start).
    """

    placement: str = field(default="houlsby", metadata={"help": "houlsby (attention + FFN) or pfeiffer (FFN only)"})
    reduction_factor: int = field(default=16, metadata={"help": "bottleneck width = out_features // this"})
    non_linearity: str = field(default="relu", metadata={"help": "activation between down and up projections"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "modules whose output gets an adapter; None: from placement"}
    )
    init_weights: bool = field(default=True, metadata={"help": "zero the up projection (identity at start)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PeftType(PEFT_TYPE_NAME)  # added to the enum when this package is imported
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 1:
            raise ValueError(f"reduction_factor must be a positive integer; got {self.reduction_factor!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if isinstance(self.target_modules, list):
            self.target_modules = sorted(set(self.target_modules))

    def targets_for(self, model_type: str) -> list[str]:
        """The module names ``placement`` means for ``model_type``; a clear error for an unknown architecture."""
        if model_type not in SUBLAYER_OUTPUTS:
            raise ValueError(
                f"bottleneck adapters know the sublayer outputs of {', '.join(sorted(SUBLAYER_OUTPUTS))}, not "
                f"{model_type!r}; give target_modules (the attention and feed-forward output projections)"
            )
        attention, feed_forward = SUBLAYER_OUTPUTS[model_type]
        return [attention, feed_forward] if self.placement == "houlsby" else [feed_forward]

"""Prompt- and prefix-tuning adapters: trained virtual tokens placed before a request's prompt at prefill.

peft runs them by prepending, on every forward pass: prompt tuning (Lester et al., 2021) prepends trained input
embeddings; prefix tuning (Li & Liang, 2021) prepends trained keys and values in every layer
(``PeftModelForCausalLM.forward``). Both then occupy the first ``count`` positions of the sequence, so the prompt's
tokens sit at positions ``count`` on. Once the prompt is prefilled, the virtual tokens are in the request's KV cache,
and each further token is a plain step of the bare base: the scheduler decodes these requests in the base's row group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lorag.llm.adapters.format import VIRTUAL_TOKENS_WEIGHT
from lorag.llm.adapters.validation import ValidatedAdapter, prefix_shape

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class VirtualTokens:
    """A resident prompt- or prefix-tuning adapter, in the shapes a prefill needs."""

    kind: str
    count: int
    embeddings: torch.Tensor | None = None
    """Prompt tuning: (count, hidden) input embeddings."""
    keys_values: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    """Prefix tuning: per layer, (key, value) of shape (1, key/value heads, count, head size)."""

    @classmethod
    def from_validated(cls, model: Any, validated: ValidatedAdapter) -> VirtualTokens:
        """Place the weights as peft does: on the model's device, prefixes in the model's dtype."""
        import torch

        weight = validated.state_dict[VIRTUAL_TOKENS_WEIGHT].to(device=model.device, dtype=torch.float32)
        count = int(weight.shape[0])
        if validated.kind == "prompt-tuning":
            return cls(validated.kind, count, embeddings=weight)
        layers, kv_heads, head_dim = prefix_shape(model.config)
        # peft's get_prompt: (count, layers * 2 * heads * dim) -> per layer (2, 1, heads, count, dim)
        per_layer = weight.to(model.dtype).view(1, count, layers * 2, kv_heads, head_dim).permute(2, 0, 3, 1, 4)
        pairs = tuple((per_layer[2 * i], per_layer[2 * i + 1]) for i in range(layers))
        return cls(validated.kind, count, keys_values=pairs)

    def prefill_inputs(self, model: Any, ids: torch.Tensor) -> tuple[dict[str, Any], Any]:
        """Forward keyword arguments and the KV cache for prefilling ``ids`` (1, n) after the virtual tokens."""
        import torch
        from transformers import DynamicCache

        n = ids.shape[1]
        if self.embeddings is not None:
            embeds = model.get_input_embeddings()(ids)
            inputs = torch.cat([self.embeddings.to(embeds.dtype).unsqueeze(0), embeds], dim=1)
            positions = torch.arange(self.count + n, device=ids.device).unsqueeze(0)
            return {"inputs_embeds": inputs, "position_ids": positions}, DynamicCache()
        cache = DynamicCache(ddp_cache_data=[(k.contiguous(), v.contiguous()) for k, v in self.keys_values])
        positions = torch.arange(self.count, self.count + n, device=ids.device).unsqueeze(0)
        return {"input_ids": ids, "position_ids": positions}, cache

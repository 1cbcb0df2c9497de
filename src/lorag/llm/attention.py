"""Row-wise attention, so a request's output does not depend on what else shares its batch.

Left-padding requests of different lengths into one batch changes the shape of every attention call, and CPU kernels
(oneDNN/MKL) pick different reduction orders for different shapes: the same request then gets logits that differ in
the last bits from its solo run, enough to flip a greedy token now and then. The scheduler therefore registers this
attention function with transformers: while a batch runs, each row attends over exactly its own unpadded keys with
the same call a solo run makes. Outside the scheduler (no row spans set) it is plain SDPA.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

ATTENTION_NAME = "lorag_rowwise"
_ROW_STARTS: ContextVar[Sequence[int] | None] = ContextVar("lorag_row_starts", default=None)
_registered = False


@contextmanager
def row_spans(starts: Sequence[int]) -> Iterator[None]:
    """Within the block, row ``b`` of the batch holds valid keys from index ``starts[b]`` on."""
    token = _ROW_STARTS.set(starts)
    try:
        yield
    finally:
        _ROW_STARTS.reset(token)


def rowwise_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers attention interface: ``query`` (B, H, Lq, D), ``key``/``value`` (B, Hkv, Lk, D)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    starts = _ROW_STARTS.get()
    if starts is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    batch, heads, q_len, head_dim = query.shape
    k_len = key.shape[2]
    out = query.new_zeros(batch, q_len, heads, head_dim)
    for row, start in enumerate(starts):
        q_from = max(0, start - (k_len - q_len))  # query i sits at key position k_len - q_len + i
        mask = None
        if q_len - q_from > 1 and q_len - q_from != k_len - start:  # a prefill after cached keys (a trained prefix)
            mask = _causal_after_prefix(q_len - q_from, k_len - start, query.device)
        attn, _ = sdpa_attention_forward(
            module,
            query[row : row + 1, :, q_from:],
            key[row : row + 1, :, start:],
            value[row : row + 1, :, start:],
            mask,
            dropout,
            scaling,
        )
        out[row, q_from:] = attn[0]
    return out, None


def _causal_after_prefix(q_len: int, k_len: int, device: Any) -> Any:
    """(1, 1, q_len, k_len) mask: query ``i`` sees the ``k_len - q_len`` cached keys and the queries up to ``i``."""
    import torch

    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)[None, None]


def ensure_registered() -> str:
    """Register the attention function (and SDPA's mask builder) with transformers once; returns its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTENTION_NAME, rowwise_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
        _registered = True
    return ATTENTION_NAME

"""Row-wise products: how a batched decode step gives every request the bits of its solo run.

CPU matrix kernels (MKL/oneDNN) round differently for different numbers of rows: a product over one row (the
matrix-vector kernel every solo decode step uses) and the same row inside a product over four give logits that differ
in the last bits, enough to flip a greedy token now and then. With exact batching (``exact_batching=True``), the
scheduler therefore runs each weight product of a decode step once per batch row, each over that row alone: the
kernel a solo run uses, so the result is bit for bit the solo one by construction. Everything else in the step
(norms, rotary embeddings, the row-wise attention of ``lorag.llm.attention``, sampling, the Python around it)
stays batched, and a weight read for the first row is still in the CPU's cache for the next ones.

Before this, lorag filled every step up to four rows with thrown-away rows so that all products ran on the
many-row kernel; a lone request paid for four rows, and its decode was slower than transformers' ``generate``
(``benchmarks/results/decode.md``). Row-wise products cost nothing alone and more per row the larger the batch
(eight rows: about half the throughput of one product over all of them, ``benchmarks/results/adapters.md``), which
is why exactness is opt-in, as batch invariance is in vLLM and SGLang.

The products are the forward passes of the model's ``torch.nn.Linear`` modules (bitsandbytes' 4- and 8-bit layers,
peft's LoRA matrices and the bottleneck adapters' projections are ``Linear`` subclasses too) and of lorag's
lower-precision output layer. Splitting them per row also makes bitsandbytes' int8 layers exact: LLM.int8 picks its
outlier columns over the rows it is given.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_ROWWISE: ContextVar[bool] = ContextVar("lorag_rowwise_products", default=False)
_INNER = "_lorag_inner_forward"


@contextmanager
def rowwise_products(model: Any) -> Iterator[None]:
    """Within the block (this thread only), each weight product of ``model`` runs once per batch row.

    Modules added since the last call (an adapter loaded meanwhile) are prepared on entry."""
    prepare(model)
    token = _ROWWISE.set(True)
    try:
        yield
    finally:
        _ROWWISE.reset(token)


def prepare(model: Any) -> None:
    """Give every weight-product module of ``model`` a forward that splits rows while ``rowwise_products`` is on;
    outside it the module runs as before. Idempotent. The forward is a method bound to its module, so a deep copy of
    the model computes with the copy's weights."""
    import torch

    from lorag.llm.loading import low_precision_head_class

    product_kinds = (torch.nn.Linear, low_precision_head_class())
    for module in model.modules():
        own = module.__dict__.get("forward")
        if isinstance(module, product_kinds) and getattr(own, "__func__", None) is not _rowwise_forward:
            module.__dict__[_INNER] = own  # a forward set on the instance before (None: the class's)
            module.forward = types.MethodType(_rowwise_forward, module)


def _rowwise_forward(module: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    forward = module.__dict__[_INNER] or functools.partial(type(module).forward, module)
    if not _ROWWISE.get() or x.dim() < 3 or x.shape[0] == 1:
        return forward(x, *args, **kwargs)
    import torch

    return torch.cat([forward(x[row : row + 1], *args, **kwargs) for row in range(x.shape[0])])

"""Column-major storage for wide float32 weights: same values, same module, a tied embedding kept tied."""

from __future__ import annotations

import torch

from lorag.llm.cpu_layout import lay_out_for_cpu_products


class _Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(300, 32)
        self.up = torch.nn.Linear(32, 64)
        self.down = torch.nn.Linear(64, 32)
        self.bf16 = torch.nn.Linear(32, 64).to(torch.bfloat16)
        self.head = torch.nn.Linear(32, 300, bias=False)
        self.head.weight = self.embed.weight


def test_wide_float32_weights_become_column_major_with_the_same_values() -> None:
    model = _Tied()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert lay_out_for_cpu_products(model) == 2  # up, and the tied head/embedding once
    assert model.up.weight.stride() == (1, 64)
    assert model.head.weight.stride() == (1, 300)
    assert model.head.weight is model.embed.weight
    assert model.down.weight.stride() == (64, 1)  # deeper than wide: as loaded
    assert model.bf16.weight.stride() == (32, 1)  # bfloat16: as loaded
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    ids = torch.tensor([[3, 299, 0]])
    assert torch.equal(model.embed(ids), before["embed.weight"][ids])
    x = torch.randn(2, 32)
    assert torch.allclose(model.head(x), x @ before["embed.weight"].T, atol=1e-5)
    assert lay_out_for_cpu_products(model) == 0  # already laid out

"""Row-wise products: inside ``rowwise_products`` a batch's weight products equal each row's solo product."""

from __future__ import annotations

import copy

import torch

from lorag.llm.rowwise import prepare, rowwise_products


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(96, 320), torch.nn.GELU(), torch.nn.Linear(320, 96, bias=False))


def test_batched_rows_equal_their_solo_products_bit_for_bit() -> None:
    model = _model()
    rows = torch.randn(7, 1, 96)
    solo = [model(rows[i : i + 1]) for i in range(rows.shape[0])]
    with torch.inference_mode(), rowwise_products(model):
        batched = model(rows)
    assert all(torch.equal(batched[i : i + 1], solo[i]) for i in range(rows.shape[0]))


def test_outside_the_block_products_run_over_all_rows() -> None:
    model = _model()
    calls: list[int] = []
    first = model[0]
    original = first.forward
    first.forward = lambda x: (calls.append(x.shape[0]), original(x))[1]  # type: ignore[method-assign]
    prepare(model)
    rows = torch.randn(5, 1, 96)
    model(rows)
    assert calls == [5]
    calls.clear()
    with rowwise_products(model):
        model(rows)
    assert calls == [1] * 5


def test_modules_added_later_are_prepared_on_entry_and_once() -> None:
    model = _model()
    prepare(model)
    prepare(model)  # idempotent: one wrapper per module
    model.append(torch.nn.Linear(96, 8))
    calls: list[int] = []
    added = model[3]
    original = added.forward
    added.forward = lambda x: (calls.append(x.shape[0]), original(x))[1]  # type: ignore[method-assign]
    with rowwise_products(model):
        model(torch.randn(3, 1, 96))
    assert calls == [1, 1, 1]


def test_a_deep_copy_computes_with_its_own_weights() -> None:
    model = _model()
    prepare(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(2.0)
    rows = torch.randn(3, 1, 96)
    with rowwise_products(twin):
        doubled = twin(rows)
    with rowwise_products(model):
        original = model(rows)
    assert not torch.allclose(doubled, original)
    with torch.no_grad():
        for p in twin.parameters():
            p.div_(2.0)
    with rowwise_products(twin):
        assert torch.equal(twin(rows), original)

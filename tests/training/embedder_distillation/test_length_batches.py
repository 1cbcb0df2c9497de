"""Length-grouped batches: every text once per epoch, batches of similar length, in shuffled order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasets import Dataset

from lorag.training.length_batches import LengthGroupedBatchSampler, length_grouped_batches


@pytest.mark.parametrize(("n", "batch_size", "drop_last"), [(1000, 32, False), (1000, 32, True), (64, 32, False)])
def test_each_index_once_and_as_many_batches_as_plain_batching(n: int, batch_size: int, drop_last: bool) -> None:
    lengths = np.random.default_rng(0).integers(5, 500, size=n)
    batches = length_grouped_batches(lengths, batch_size, drop_last, seed=1)
    assert len(batches) == (n // batch_size if drop_last else math.ceil(n / batch_size))
    flat = [i for batch in batches for i in batch]
    assert len(flat) == len(set(flat)) and set(flat) <= set(range(n))
    assert len(flat) == (len(batches) * batch_size if drop_last else n)
    assert sum(len(b) < batch_size for b in batches) <= 1


def test_short_and_long_texts_are_not_mixed_and_batch_order_is_shuffled() -> None:
    lengths = np.array([20] * 320 + [1000] * 320)  # sentences and documents, 10 batches' worth of each
    batches = length_grouped_batches(lengths, 32, drop_last=False, seed=0)
    kinds = [set(lengths[b].tolist()) for b in batches]
    assert all(len(kind) == 1 for kind in kinds)  # no batch pads a sentence to a document's length
    order = [kind.pop() for kind in kinds]
    assert order != sorted(order) and order != sorted(order, reverse=True)  # long and short steps interleave


def test_reproducible_per_seed_and_different_across_epochs() -> None:
    lengths = np.random.default_rng(0).integers(5, 500, size=300)
    assert length_grouped_batches(lengths, 16, False, seed=3) == length_grouped_batches(lengths, 16, False, seed=3)
    assert length_grouped_batches(lengths, 16, False, seed=3) != length_grouped_batches(lengths, 16, False, seed=4)


def test_sampler_reads_lengths_from_the_text_columns() -> None:
    texts = ["x" * (i % 7 + 1) * 50 for i in range(100)]
    data = Dataset.from_dict({"text": texts, "label": [[0.0, 1.0]] * 100})
    sampler = LengthGroupedBatchSampler(data, batch_size=10, drop_last=False, seed=5)
    first = list(sampler)
    assert len(first) == len(sampler) == 10 and sorted(i for b in first for i in b) == list(range(100))
    sampler.set_epoch(1)
    assert list(sampler) != first
    with pytest.raises(ValueError, match="no text column"):
        LengthGroupedBatchSampler(Dataset.from_dict({"label": [1, 2]}), batch_size=2, drop_last=False)

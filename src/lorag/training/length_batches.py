"""Batches of texts of similar length for embedding distillation.

A batch pads every text to its longest one, so a random mix of short sentences and long documents spends most of
each step on padding. Grouping by length makes the short texts nearly free. transformers' ``LengthGroupedSampler``
groups too, but leaves each mega-batch's batches in length order (long ones first), so the last steps of an epoch
would all be short texts; here the batches are shuffled after grouping.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:  # imported only where training runs; sentence-transformers 6 moved the samplers
    from sentence_transformers.base.sampler import DefaultBatchSampler
except ImportError:  # sentence-transformers < 6
    from sentence_transformers.sampler import DefaultBatchSampler  # type: ignore[no-redef]

#: Texts are sorted by length within windows of this many batches: wide enough to group well, narrow enough that
#: a window is still a random draw from the data.
WINDOW_BATCHES = 50


def text_lengths(dataset: Any) -> np.ndarray:
    """Characters per row, summed over the string columns (a cheap, monotone stand-in for token counts)."""
    columns = [name for name in dataset.column_names if isinstance(dataset[0][name], str)]
    if not columns:
        raise ValueError(f"no text column to group by length among {dataset.column_names}")
    return np.sum([[len(text) for text in dataset[name]] for name in columns], axis=0)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, drop_last: bool, seed: int) -> list[list[int]]:
    """Shuffle, sort by length within windows of ``WINDOW_BATCHES`` batches, cut into batches, shuffle the batches.

    Only the very last batch can be short (it is dropped with ``drop_last``), so there are exactly as many batches as
    a plain batch sampler gives.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    window = batch_size * WINDOW_BATCHES
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        order[start : start + window] = chunk[np.argsort(-lengths[chunk], kind="stable")]
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return [batches[i] for i in rng.permutation(len(batches))]


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """A sentence-transformers batch sampler (``batch_sampler=`` of the training arguments) that groups by length.

    Reproducible per epoch: the trainer calls ``set_epoch``, and epoch ``e`` draws with seed ``seed + e``.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        self.lengths = text_lengths(dataset)

    def __iter__(self) -> Any:
        yield from length_grouped_batches(self.lengths, self.batch_size, self.drop_last, self.seed + self.epoch)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

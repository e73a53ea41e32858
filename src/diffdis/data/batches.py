"""Epoch-wise shuffled batches whose position can be saved and restored (resume continues mid-epoch)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class BatchPosition:
    epoch: int = 0
    offset: int = 0  # batches already served in this epoch


class ShuffledBatches:
    """Infinite stream of index batches. Epoch e's order and caption choices come from seed (seed, e) alone,
    so a resumed run sees exactly the batches an uninterrupted run would."""

    def __init__(self, size: int, batch_size: int, seed: int, position: BatchPosition | None = None):
        if size < batch_size:
            raise ValueError(f"the dataset has {size} samples, fewer than one batch of {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.position = position or BatchPosition()
        self.batches_per_epoch = size // batch_size  # the ragged tail is dropped (InfoNCE wants full batches)

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.random.Generator]]:
        """Yields (indices, rng for this batch's random choices such as caption templates)."""
        while True:
            epoch = self.position.epoch
            order = self.epoch_rng(epoch).permutation(self.size)
            while self.position.offset < self.batches_per_epoch:
                k = self.position.offset
                self.position.offset += 1
                yield (
                    order[k * self.batch_size : (k + 1) * self.batch_size],
                    np.random.default_rng([self.seed, epoch, k]),
                )
            self.position = BatchPosition(epoch + 1, 0)

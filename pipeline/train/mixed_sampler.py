"""Batches with a fixed number of labeled and pseudo-labeled samples, for a fixed number of
optimiser steps: the equal training budget of self-training (docs/protocol.md).

Every method retrains g for the same steps with the same batch size, and each batch holds the
same count of labeled samples whatever a round accepted, so methods differ in which
pseudo-labels they train on, not in how much they train. A round that accepts nothing trains
on labeled-only batches for the same steps (supervised always does).
"""

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def labeled_per_batch(batch_size: int, labeled_share: float, pseudo_labeled: int) -> int:
    """How many of a batch's samples are labeled: all of them without pseudo-labels, else
    round(labeled_share x batch_size), kept within [1, batch_size - 1] so both kinds appear."""
    if pseudo_labeled == 0:
        return batch_size
    return min(max(round(labeled_share * batch_size), 1), batch_size - 1)


class MixedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices for DataLoader(batch_sampler=...): indices below
    `labeled` are the labeled samples, the `pseudo_labeled` after them the pseudo-labeled ones.

    Each epoch is `steps_per_epoch` batches of `batch_size` (in all processes together), each
    with labeled_per_batch(...) labeled samples. Each kind walks through reshuffled cycles of
    its samples, so all of them come up about equally often. Batches depend only on
    (seed, epoch): call set_epoch(epoch) before each epoch. Under DistributedDataParallel each
    rank yields its share of every batch.
    """

    def __init__(
        self,
        labeled: int,
        pseudo_labeled: int,
        batch_size: int,
        labeled_share: float,
        steps_per_epoch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if labeled < 1:
            raise ValueError(f"retraining needs at least one labeled sample, got {labeled}")
        if pseudo_labeled < 0 or steps_per_epoch < 1:
            raise ValueError(
                f"pseudo_labeled must be >= 0 and steps_per_epoch >= 1, got {pseudo_labeled} "
                f"and {steps_per_epoch}"
            )
        if batch_size < 2 * world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must give every one of {world_size} processes at "
                "least 2 samples"
            )
        if not 0.0 < labeled_share < 1.0:
            raise ValueError(f"labeled_share must lie in (0, 1), got {labeled_share}")
        self.labeled, self.pseudo_labeled = labeled, pseudo_labeled
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.labeled_per_batch = labeled_per_batch(batch_size, labeled_share, pseudo_labeled)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    @staticmethod
    def _cycle(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` draws from `indices`: whole reshuffled passes, then part of one more."""
        passes = -(-count // len(indices))
        return np.concatenate([rng.permutation(indices) for _ in range(passes)])[:count]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        steps, labeled_count = self.steps_per_epoch, self.labeled_per_batch
        pseudo_count = self.batch_size - labeled_count
        labeled = self._cycle(np.arange(self.labeled), steps * labeled_count, rng)
        labeled = labeled.reshape(steps, labeled_count)
        pseudo = np.empty((steps, 0), dtype=np.int64)
        if pseudo_count:
            pool = self.labeled + np.arange(self.pseudo_labeled)
            pseudo = self._cycle(pool, steps * pseudo_count, rng).reshape(steps, pseudo_count)
        for step in range(steps):
            batch = rng.permutation(np.concatenate([labeled[step], pseudo[step]]))
            yield batch[self.rank :: self.world_size].tolist()

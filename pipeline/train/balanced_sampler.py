"""Class-balanced batches for metric learning: P classes x K clips each.

Every batch must hold positives (K >= 2 clips of a class) and negatives (P >= 2 classes).
A class with fewer than K labeled clips repeats some: the loader augments each draw
independently, so two draws of one clip still make a positive pair.
"""

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices, P classes x K clips, for DataLoader(batch_sampler=...).

    Batches depend only on (seed, epoch): call set_epoch(epoch) before each epoch. With
    DistributedDataParallel, each rank yields its own share of one common draw, so ranks
    never see the same batch. Within an epoch every class walks through a reshuffled cycle of
    its clips, so all labeled clips come up about equally often.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        clips_per_class: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {labels.shape}")
        if clips_per_class < 2:
            raise ValueError(
                f"clips_per_class must be >= 2 to form positives, got {clips_per_class}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError(f"balanced batches need at least 2 classes, got {len(classes)}")
        if not 2 <= classes_per_batch <= len(classes):
            raise ValueError(
                f"classes_per_batch must lie in [2, {len(classes)}] (the labeled classes), "
                f"got {classes_per_batch}"
            )
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.classes_per_batch = classes_per_batch
        self.clips_per_class = clips_per_class
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        batch = classes_per_batch * clips_per_class
        self.batches_per_rank = max(1, -(-len(labels) // (batch * world_size)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_rank

    def _draw(self, rng: np.random.Generator) -> list[list[int]]:
        cycles = [rng.permutation(m) for m in self.members]
        cursors = [0] * len(self.members)
        batches = []
        for _ in range(self.batches_per_rank * self.world_size):
            batch = []
            for c in rng.choice(len(self.members), self.classes_per_batch, replace=False):
                members = self.members[c]
                if len(members) < self.clips_per_class:
                    batch.extend(rng.choice(members, self.clips_per_class, replace=True).tolist())
                    continue
                if cursors[c] + self.clips_per_class > len(members):
                    cycles[c], cursors[c] = rng.permutation(members), 0
                batch.extend(cycles[c][cursors[c] : cursors[c] + self.clips_per_class].tolist())
                cursors[c] += self.clips_per_class
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        yield from self._draw(rng)[self.rank :: self.world_size]

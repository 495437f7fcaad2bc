"""DataLoaders for training: shuffled (and sharded under DDP) or driven by a batch sampler."""

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from pipeline.train.runtime import Runtime


def training_loader(
    dataset: Dataset,
    runtime: Runtime,
    workers: int,
    seed: int,
    batch_size: int = 0,
    batch_sampler: Sampler | None = None,
) -> DataLoader:
    """Either `batch_size` with shuffling (sharded across DDP processes, seeded per epoch) or a
    `batch_sampler` that already knows about ranks. Incomplete last batches are dropped so
    BatchNorm never sees a batch of one. A dataset with a `collate` method makes its own
    batches (pipeline/data/datasets.py: training views are finished a batch at a time)."""
    # Workers are started anew every epoch, not kept: a kept worker holds its own copy of the
    # dataset and never sees the set_epoch of the next epoch, so it would replay the first
    # epoch's crops and views every epoch.
    options = {
        "num_workers": workers,
        "pin_memory": runtime.device.type == "cuda",
        "collate_fn": getattr(dataset, "collate", None),
    }
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **options)
    # DistributedSampler reshuffles by (seed, epoch) through set_epoch, also for one process,
    # so a resumed epoch replays the same order.
    sampler = DistributedSampler(dataset, runtime.world_size, runtime.rank, shuffle=True, seed=seed)
    per_process = max(batch_size // runtime.world_size, 1)
    drop_last = len(dataset) > per_process * runtime.world_size
    return DataLoader(
        dataset, batch_size=per_process, sampler=sampler, drop_last=drop_last, **options
    )

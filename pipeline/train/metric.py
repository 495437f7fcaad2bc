"""Alignability-verification metric learning of the alignability model: softDTW distances
between every pair of a class-balanced batch, the hard-negative triplet loss and the
learnable alignability score's binary cross-entropy."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import AugmentParams, ClipParams, MetricParams, ScheduleParams
from pipeline.data.datasets import ClipDataset
from pipeline.data.frames import FrameStore
from pipeline.models.alignability import AlignabilityModel
from pipeline.objectives.metric import MetricObjective
from pipeline.train.balanced_sampler import ClassBalancedBatchSampler
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import Runtime


def batch_classes(metric: MetricParams, labels: list[int]) -> int:
    """Classes per batch: the params' P, or every labeled class when there are fewer (the
    open-world protocol leaves some classes unlabeled; small datasets have few classes)."""
    return min(metric.classes_per_batch, len(set(labels)))


def train_metric(
    model: AlignabilityModel,
    *,
    store: FrameStore,
    video_ids: list[str],
    labels: list[int],
    clip: ClipParams,
    augment: AugmentParams,
    metric: MetricParams,
    train: ScheduleParams,
    runtime: Runtime,
    checkpoint_path: str | Path,
    config: dict[str, Any],
    monitor: Callable[[], dict[str, float]] | None = None,
    workers: int = 0,
    log_prefix: str = "",
) -> dict[str, float]:
    """Train `model` in place (backbone frozen) on labeled clips, `metric` choosing the
    objective and batch composition and `train` the schedule; returns the last metrics."""
    model.encoder.freeze_backbone()
    dataset = ClipDataset(store, video_ids, labels, clip, augment, seed=train.seed)
    sampler = ClassBalancedBatchSampler(
        labels,
        classes_per_batch=batch_classes(metric, labels),
        clips_per_class=metric.clips_per_class,
        seed=train.seed,
        rank=runtime.rank,
        world_size=runtime.world_size,
    )
    loader = training_loader(dataset, runtime, workers, train.seed, batch_sampler=sampler)
    objective = MetricObjective(model, metric)
    return fit(
        objective,
        loader=loader,
        train=train,
        runtime=runtime,
        checkpoint_path=checkpoint_path,
        config=config,
        monitor=monitor,
        monitor_every=metric.verify_every,
        log_prefix=log_prefix,
    )

"""Supervised training of the action encoder g with cross-entropy: fine-tuning on the labeled
set and retraining on labeled plus accepted pseudo-labeled clips."""

from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Sampler

from pipeline.config import AugmentParams, ClipParams, TrainParams
from pipeline.data.datasets import ClipDataset
from pipeline.data.frames import FrameStore
from pipeline.objectives.classify import ClassifyObjective
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import Runtime


def train_classifier(
    model: nn.Module,
    *,
    store: FrameStore,
    video_ids: list[str],
    labels: list[int],
    clip: ClipParams,
    augment: AugmentParams,
    train: TrainParams,
    runtime: Runtime,
    checkpoint_path: str | Path,
    config: dict[str, Any],
    workers: int = 0,
    log_prefix: str = "",
    batch_sampler: Sampler[list[int]] | None = None,
) -> dict[str, float]:
    """Train `model` in place on (video, label) pairs; returns the last epoch's metrics.

    Batches are shuffled `train.batch_size` samples per epoch, or what `batch_sampler` yields
    (indices into `video_ids`; pipeline.train.mixed_sampler for self-training's budget)."""
    dataset = ClipDataset(store, video_ids, labels, clip, augment, seed=train.seed)
    loader = training_loader(
        dataset,
        runtime,
        workers,
        train.seed,
        batch_size=train.batch_size,
        batch_sampler=batch_sampler,
    )
    return fit(
        ClassifyObjective(model),
        loader=loader,
        train=train,
        runtime=runtime,
        checkpoint_path=checkpoint_path,
        config=config,
        log_prefix=log_prefix,
    )

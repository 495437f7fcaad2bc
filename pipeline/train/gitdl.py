"""GITDL self-supervised pretraining of a frame encoder on unlabeled videos: the alignability
encoder f, or the tiny action encoder's trunk (pipeline/models/action.py, FramewiseTrunk).

A frame encoder maps clips (B, C, T, H, W) to frame features (B, T, d) and has a `project`
head (B, T, d) -> (B, T, p) that only this objective uses."""

from pathlib import Path
from typing import Any

from torch import nn

from pipeline.config import AugmentParams, ClipParams, GitdlParams
from pipeline.data.datasets import GlobalLocalDataset
from pipeline.data.frames import FrameStore
from pipeline.objectives.gitdl import GitdlObjective
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import Runtime


def train_gitdl(
    encoder: nn.Module,
    *,
    store: FrameStore,
    video_ids: list[str],
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    runtime: Runtime,
    checkpoint_path: str | Path,
    config: dict[str, Any],
    workers: int = 0,
) -> dict[str, float]:
    """Pretrain `encoder` in place on `video_ids`, labels unused; returns the last metrics."""
    dataset = GlobalLocalDataset(store, video_ids, clip, augment, gitdl.local_span, seed=gitdl.seed)
    loader = training_loader(dataset, runtime, workers, gitdl.seed, batch_size=gitdl.batch_size)
    return fit(
        GitdlObjective(encoder, gitdl),
        loader=loader,
        train=gitdl,
        runtime=runtime,
        checkpoint_path=checkpoint_path,
        config=config,
    )

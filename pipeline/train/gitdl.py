"""GITDL self-supervised pretraining of a frame encoder on unlabeled videos: the alignability
encoder f, or the tiny action encoder's trunk (pipeline/models/action.py, FramewiseTrunk).

A frame encoder maps clips (B, C, T, H, W) to frame features (B, T, d) and has a `project`
head (B, T, d) -> (B, T, p) that only this objective uses."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config import AugmentParams, ClipParams, GitdlParams
from pipeline.data.datasets import GlobalLocalDataset
from pipeline.data.frames import FrameStore
from pipeline.objectives.gitdl import gitdl_loss
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import Runtime


def _shared(z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Pick the shared frames out of a clip's projections: (B, T, p), (B, n) -> (B, n, p)."""
    return z.gather(1, positions[..., None].expand(-1, -1, z.shape[-1]))


class GitdlObjective(nn.Module):
    """A batch of global/local pairs -> the GITDL loss on the frames both clips share."""

    def __init__(self, encoder: nn.Module, gitdl: GitdlParams) -> None:
        super().__init__()
        self.encoder, self.gitdl = encoder, gitdl

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # One pass over both views keeps BatchNorm statistics common to them.
        clips = torch.cat([batch["global"], batch["local"]])  # (2B, 3, T, H, W)
        z_global, z_local = (
            self.encoder.project(self.encoder(clips)).float().chunk(2)
        )  # (B, T, p) each
        loss = gitdl_loss(
            _shared(z_global, batch["global_pos"]),
            _shared(z_local, batch["local_pos"]),
            batch["timestamps"],
            batch["valid"],
            tau=self.gitdl.tau,
            beta=self.gitdl.beta,
            sigma=self.gitdl.sigma,
        )
        return {"loss": loss, "shared_frames": batch["valid"].float().sum(1).mean()}


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

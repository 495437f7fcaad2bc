"""The GITDL stages' health: the self-supervised loss after training against its value at
random initialisation, on the same fixed views of a sample of the training videos (these
stages have no labels and no split)."""

import numpy as np
import torch
from torch.utils.data import DataLoader

from pipeline.config import AugmentParams, ClipParams, GitdlParams, HealthParams
from pipeline.data.datasets import GlobalLocalDataset
from pipeline.data.frames import FrameStore
from pipeline.health.checks import Check, below_chance
from pipeline.objectives.gitdl import GitdlObjective
from pipeline.train.runtime import Runtime


@torch.no_grad()
def gitdl_probe_loss(
    encoder: torch.nn.Module,
    store: FrameStore,
    video_ids: list[str],
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    runtime: Runtime,
) -> float:
    """The GITDL loss of `encoder` (eval mode) on fixed views of `video_ids`: the same views
    every call, so the loss at random initialisation and after training compare directly."""
    dataset = GlobalLocalDataset(store, video_ids, clip, augment, gitdl.local_span, seed=gitdl.seed)
    objective = GitdlObjective(encoder, gitdl)
    was_training = encoder.training
    encoder.eval().to(runtime.device)
    total, count = 0.0, 0
    # A DataLoader draws from torch's global generator; measuring must not change training.
    with torch.random.fork_rng(devices=[]):
        batches = DataLoader(
            dataset, batch_size=max(gitdl.batch_size, 2), collate_fn=dataset.collate
        )
        for batch in batches:
            batch = {k: v.to(runtime.device) for k, v in batch.items()}
            total += float(objective(batch)["loss"]) * len(batch["global"])
            count += len(batch["global"])
    encoder.train(was_training)
    return total / count


def probe_videos(store: FrameStore, count: int, seed: int) -> list[str]:
    """A seeded sample of `count` training videos (self-supervised stages have no labels and
    no split; they are measured on the videos they train on)."""
    ids = store.manifest.loc[store.manifest["subset"] == "train", "video_id"].tolist()
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, min(count, len(ids)), replace=False).tolist())


def gitdl_check(initial: float, final: float, settings: HealthParams) -> Check:
    """The GITDL loss after training against its value at random initialisation."""
    return below_chance("gitdl_loss", final, initial, settings.max_loss_ratio)

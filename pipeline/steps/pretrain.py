"""Step 1: GITDL self-supervised pretraining on every training video, labels unused, of the
alignability encoder f and of the action encoder g's trunk. Run once per dataset and shared by
every split and method.

The paper starts g from self-supervised weights (TCLR, a temporal contrastive method, on
Kinetics400) and f from GITDL; with nothing to download, both start here from GITDL on the
dataset's own videos.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.checkpoint import save_checkpoint
from pipeline.config import (
    ActionEncoderParams,
    AlignabilityEncoderParams,
    AugmentParams,
    ClipParams,
    GitdlParams,
    RunParams,
)
from pipeline.data.frames import FrameStore
from pipeline.models.action import FramewiseTrunk
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.models.saved import SavedAlignabilityModel, save_alignability_model
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.gitdl import train_gitdl
from pipeline.train.runtime import Runtime, start_runtime, stop_runtime


def _gitdl_on_training_videos(
    frame_encoder: nn.Module,
    encoder_config: dict[str, Any],
    frames: Path,
    checkpoint: Path,
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    runtime: Runtime,
    workers: int,
) -> dict[str, float]:
    store = FrameStore(frames)
    train_ids = store.manifest.loc[store.manifest["subset"] == "train", "video_id"].tolist()
    config = {
        "encoder": encoder_config,
        "clip": clip.model_dump(mode="json"),
        "augment": augment.model_dump(mode="json"),
        "gitdl": gitdl.model_dump(mode="json"),
        "inputs": fingerprint(Path(frames) / "manifest.parquet"),
    }
    return train_gitdl(
        frame_encoder, store, train_ids, clip, augment, gitdl, runtime, checkpoint, config, workers
    )


def pretrain(
    *,
    frames: Path,
    out: Path,
    checkpoint: Path,
    encoder: AlignabilityEncoderParams,
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    run: RunParams,
) -> dict[str, float]:
    """Pretrain f with GITDL for `gitdl.epochs` epochs (0 turns GITDL off: f keeps its
    initial weights) and write it, with a fresh score head, to `out`."""
    runtime = start_runtime(run.device, run.threads)
    torch.manual_seed(gitdl.seed)
    saved = SavedAlignabilityModel(build_alignability_model(encoder), encoder, clip)
    metrics: dict[str, float] = {}
    if gitdl.epochs > 0:
        metrics = _gitdl_on_training_videos(
            saved.model.encoder,
            encoder.model_dump(mode="json"),
            frames,
            checkpoint,
            clip,
            augment,
            gitdl,
            runtime,
            run.workers,
        )
    if runtime.is_main:
        save_alignability_model(out, saved, metrics)
        Path(checkpoint).unlink(missing_ok=True)
    stop_runtime(runtime)
    return metrics


def pretrain_action(
    *,
    frames: Path,
    out: Path,
    checkpoint: Path,
    encoder: ActionEncoderParams,
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    run: RunParams,
) -> dict[str, float]:
    """Pretrain g's trunk with GITDL for `gitdl.epochs` epochs (r2plus1d_tiny only) and write
    its weights, without a classifier, to `out`: the state-dict file finetune starts from.
    With 0 epochs g keeps its initial weights (random, or `encoder.weights`)."""
    runtime = start_runtime(run.device, run.threads)
    torch.manual_seed(gitdl.seed)
    # the classifier is dropped below, so its size does not matter
    action_encoder = build_action_encoder(encoder, num_classes=1)
    metrics: dict[str, float] = {}
    if gitdl.epochs > 0:
        metrics = _gitdl_on_training_videos(
            FramewiseTrunk(action_encoder),
            encoder.model_dump(mode="json"),
            frames,
            checkpoint,
            clip,
            augment,
            gitdl,
            runtime,
            run.workers,
        )
    if runtime.is_main:
        trunk = {k: v for k, v in action_encoder.state_dict().items() if not k.startswith("fc.")}
        save_checkpoint(out, {"state_dict": trunk, "metrics": metrics})
        Path(checkpoint).unlink(missing_ok=True)
    stop_runtime(runtime)
    return metrics

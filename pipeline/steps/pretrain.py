"""Step 1: GITDL self-supervised pretraining of the alignability encoder on every training
video, labels unused. Run once per dataset and shared by every split and method."""

from pathlib import Path

import torch

from pipeline.config import (
    AlignabilityEncoderParams,
    AugmentParams,
    ClipParams,
    GitdlParams,
    RunParams,
)
from pipeline.data.frames import FrameStore
from pipeline.models.registry import build_alignability_model
from pipeline.models.saved import SavedAlignabilityModel, save_alignability_model
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.gitdl import train_gitdl
from pipeline.train.runtime import start_runtime, stop_runtime


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
    store = FrameStore(frames)
    train_ids = store.manifest.loc[store.manifest["subset"] == "train", "video_id"].tolist()
    torch.manual_seed(gitdl.seed)
    saved = SavedAlignabilityModel(build_alignability_model(encoder), encoder, clip)
    metrics: dict[str, float] = {}
    if gitdl.epochs > 0:
        config = {
            "encoder": encoder.model_dump(mode="json"),
            "clip": clip.model_dump(mode="json"),
            "augment": augment.model_dump(mode="json"),
            "gitdl": gitdl.model_dump(mode="json"),
            "inputs": fingerprint(Path(frames) / "manifest.parquet"),
        }
        metrics = train_gitdl(
            saved.model.encoder,
            store,
            train_ids,
            clip,
            augment,
            gitdl,
            runtime,
            checkpoint,
            config,
            run.workers,
        )
    if runtime.is_main:
        save_alignability_model(out, saved, metrics)
        Path(checkpoint).unlink(missing_ok=True)
    stop_runtime(runtime)
    return metrics

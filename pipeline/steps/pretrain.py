"""Step 1: GITDL self-supervised pretraining on every training video, labels unused, of the
alignability encoder f and of the action encoder g's trunk. Run once per dataset and shared by
every split and method.

The paper starts g from self-supervised weights (TCLR, a temporal contrastive method, on
Kinetics400) and f from GITDL; with nothing to download, both start here from GITDL on the
dataset's own videos.
"""

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pipeline.checkpoint import save_checkpoint
from pipeline.config import (
    ActionEncoderParams,
    AlignabilityEncoderParams,
    AugmentParams,
    ClipParams,
    GitdlParams,
    HealthParams,
    RunParams,
)
from pipeline.data.frames import FrameStore
from pipeline.health.checks import HealthReport
from pipeline.health.gitdl import gitdl_check, gitdl_probe_loss, probe_videos
from pipeline.models.action import FramewiseTrunk
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.models.saved import SavedAlignabilityModel, save_alignability_model
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.gitdl import train_gitdl
from pipeline.train.runtime import Runtime, running

# Writes the pretrained network to a path, with the pretraining metrics.
Writer = Callable[[Path, dict[str, float]], None]


def _alignability_network(
    encoder: AlignabilityEncoderParams, clip: ClipParams
) -> tuple[nn.Module, Writer]:
    """f's frame encoder, written with a fresh score head as an alignability model file."""
    saved = SavedAlignabilityModel(build_alignability_model(encoder), encoder, clip)

    def write(out: Path, metrics: dict[str, float]) -> None:
        save_alignability_model(out, saved, metrics)

    return saved.model.encoder, write


def _action_network(encoder: ActionEncoderParams) -> tuple[nn.Module, Writer]:
    """g's trunk seen frame by frame (r2plus1d_tiny only), written without its classifier: the
    state-dict file finetune starts from."""
    # the classifier is dropped when written, so its size does not matter
    action_encoder = build_action_encoder(encoder, num_classes=1)

    def write(out: Path, metrics: dict[str, float]) -> None:
        trunk = {k: v for k, v in action_encoder.state_dict().items() if not k.startswith("fc.")}
        save_checkpoint(out, {"state_dict": trunk, "metrics": metrics})

    return FramewiseTrunk(action_encoder, projection=encoder.projection), write


def _gitdl_on_training_videos(
    network: nn.Module,
    *,
    encoder_config: dict,
    frames: Path,
    checkpoint: Path,
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    runtime: Runtime,
    workers: int,
    health: HealthParams,
) -> tuple[dict[str, float], HealthReport]:
    """Train with GITDL; its health: the loss on fixed views of a sample of the training
    videos, after training against before (at random initialisation)."""
    store = FrameStore(frames)
    probe = probe_videos(store, health.probe_videos, gitdl.seed)
    initial = gitdl_probe_loss(network, store, probe, clip, augment, gitdl, runtime)
    train_ids = store.manifest.loc[store.manifest["subset"] == "train", "video_id"]
    config = {
        "encoder": encoder_config,
        "clip": clip.model_dump(mode="json"),
        "augment": augment.model_dump(mode="json"),
        "gitdl": gitdl.model_dump(mode="json"),
        "inputs": fingerprint(Path(frames) / "manifest.parquet"),
    }
    metrics = train_gitdl(
        network,
        store=store,
        video_ids=train_ids.tolist(),
        clip=clip,
        augment=augment,
        gitdl=gitdl,
        runtime=runtime,
        checkpoint_path=checkpoint,
        config=config,
        workers=workers,
    )
    final = gitdl_probe_loss(network, store, probe, clip, augment, gitdl, runtime)
    clips = f"fixed views of {len(probe)} training videos (self-supervised, no labels)"
    report = HealthReport(clips, (gitdl_check(initial, final, health),))
    metrics["health.healthy"] = float(report.healthy)
    return metrics, report


def pretrain(
    *,
    frames: Path,
    out: Path,
    checkpoint: Path,
    encoder: AlignabilityEncoderParams | ActionEncoderParams,
    clip: ClipParams,
    augment: AugmentParams,
    gitdl: GitdlParams,
    run: RunParams,
    health: HealthParams,
) -> tuple[dict[str, float], HealthReport]:
    """Pretrain f (alignability encoder params) or g's trunk (action encoder params) with GITDL
    on every training video for `gitdl.epochs` epochs and write it to `out`; 0 epochs turns
    GITDL off (the network keeps its initial weights: random, or `encoder.weights` for g).
    Returns the last epoch's metrics and the training's health."""
    with running(run.device, run.threads, run.precision) as runtime:
        torch.manual_seed(gitdl.seed)
        if isinstance(encoder, AlignabilityEncoderParams):
            network, write = _alignability_network(encoder, clip)
        else:
            network, write = _action_network(encoder)
        metrics: dict[str, float] = {}
        # GITDL turned off (epochs 0) is a choice, not a failure: nothing to check.
        report = HealthReport("nothing (GITDL is off: epochs 0)", ())
        if gitdl.epochs > 0:
            metrics, report = _gitdl_on_training_videos(
                network,
                encoder_config=encoder.model_dump(mode="json"),
                frames=frames,
                checkpoint=checkpoint,
                clip=clip,
                augment=augment,
                gitdl=gitdl,
                runtime=runtime,
                workers=run.workers,
                health=health,
            )
        if runtime.is_main:
            write(out, metrics)
            Path(checkpoint).unlink(missing_ok=True)
    return metrics, report

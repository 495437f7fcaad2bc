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
    RunParams,
)
from pipeline.data.frames import FrameStore
from pipeline.models.action import FramewiseTrunk
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.models.saved import SavedAlignabilityModel, save_alignability_model
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.gitdl import train_gitdl
from pipeline.train.runtime import running

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
) -> dict[str, float]:
    """Pretrain f (alignability encoder params) or g's trunk (action encoder params) with GITDL
    on every training video for `gitdl.epochs` epochs and write it to `out`; 0 epochs turns
    GITDL off (the network keeps its initial weights: random, or `encoder.weights` for g)."""
    with running(run.device, run.threads) as runtime:
        torch.manual_seed(gitdl.seed)
        if isinstance(encoder, AlignabilityEncoderParams):
            network, write = _alignability_network(encoder, clip)
        else:
            network, write = _action_network(encoder)
        metrics: dict[str, float] = {}
        if gitdl.epochs > 0:
            store = FrameStore(frames)
            train_ids = store.manifest.loc[store.manifest["subset"] == "train", "video_id"]
            config = {
                "encoder": encoder.model_dump(mode="json"),
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
                workers=run.workers,
            )
        if runtime.is_main:
            write(out, metrics)
            Path(checkpoint).unlink(missing_ok=True)
    return metrics

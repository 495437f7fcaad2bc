"""Step 3: supervised fine-tuning of the action encoder g on the labeled clips."""

from pathlib import Path

import torch

from pipeline.config import (
    ActionEncoderParams,
    AugmentParams,
    ClipParams,
    HealthParams,
    RunParams,
    TrainParams,
)
from pipeline.data.frames import FrameStore
from pipeline.data.splits import load_split
from pipeline.health.checks import HealthReport
from pipeline.health.measure import action_checks
from pipeline.models.registry import build_action_encoder
from pipeline.models.saved import SavedActionEncoder, save_action_encoder
from pipeline.models.weights import load_backbone_weights
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.classify import train_classifier
from pipeline.train.runtime import running


def finetune(
    *,
    frames: Path,
    split: Path,
    pretrained: Path,
    out: Path,
    checkpoint: Path,
    encoder: ActionEncoderParams,
    clip: ClipParams,
    augment: AugmentParams,
    train: TrainParams,
    run: RunParams,
    health: HealthParams,
) -> tuple[dict[str, float], HealthReport]:
    """Train g, starting from pretrain_action's trunk weights `pretrained` and a fresh
    classifier, on the split's labeled clips and write it to `out`; returns the last epoch's
    metrics and g's health."""
    with running(run.device, run.threads, run.precision) as runtime:
        store = FrameStore(frames)
        label_split = load_split(split)
        labeled, classes = label_split.labeled, label_split.classes
        torch.manual_seed(train.seed)
        # `pretrained` already holds encoder.weights, when there are any
        model = build_action_encoder(encoder.model_copy(update={"weights": ""}), len(classes))
        load_backbone_weights(model, pretrained)
        saved = SavedActionEncoder(model, encoder, clip, classes)
        config = {
            "encoder": encoder.model_dump(mode="json"),
            "clip": clip.model_dump(mode="json"),
            "augment": augment.model_dump(mode="json"),
            "train": train.model_dump(mode="json"),
            "inputs": fingerprint(Path(frames) / "manifest.parquet", split, pretrained),
        }
        metrics = train_classifier(
            saved.model,
            store=store,
            video_ids=labeled.video_id.tolist(),
            labels=labeled.label.astype(int).tolist(),
            clip=clip,
            augment=augment,
            train=train,
            runtime=runtime,
            checkpoint_path=checkpoint,
            config=config,
            workers=run.workers,
        )
        checks, clips = action_checks(
            saved,
            store=store,
            split=label_split,
            settings=health,
            batch_size=train.batch_size,
            runtime=runtime,
            workers=run.workers,
        )
        report = HealthReport(clips, tuple(checks))
        metrics["health.healthy"] = float(report.healthy)
        if runtime.is_main:
            save_action_encoder(out, saved, metrics)
            Path(checkpoint).unlink(missing_ok=True)
        return metrics, report

"""Step 5: retrain both encoders on the labeled clips plus the round's accepted pseudo-labels,
continuing from the previous round's weights.

The action encoder g trains by cross-entropy. The alignability model f trains by step 2's
objective, and only for finepseudo (the other methods never use it, so it passes through).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import AugmentParams, MetricParams, RunParams, ScheduleParams, TrainParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import load_split
from pipeline.models.saved import (
    load_action_encoder,
    load_alignability_model,
    save_action_encoder,
    save_alignability_model,
)
from pipeline.pseudo.round_table import accepted_pseudo_labels
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.classify import train_classifier
from pipeline.train.metric import train_metric
from pipeline.train.runtime import running
from pipeline.train.score_calibration import calibrate_score


@dataclass
class Retraining:
    action_metrics: dict[str, float]
    alignability_metrics: dict[str, float]
    training_clips: int


def training_clips(
    labeled: pd.DataFrame, pseudo_labeled: pd.DataFrame, labeled_share: float
) -> pd.DataFrame:
    """video_id, label of a round's training clips: the labeled clips, repeated as often as it
    takes for them to make at least `labeled_share` of the list, then the pseudo-labeled ones.

    Pseudo-labels outnumber the labels after a round or two, and some of them are wrong; kept
    at a fixed share, the true labels go on anchoring the encoders whatever a round accepts
    (the classic pseudo-label objective weighs the labeled and the pseudo-labeled loss each by
    its own mean for the same reason). Repeated clips draw fresh augmentations.
    """
    wanted = labeled_share / (1.0 - labeled_share) * len(pseudo_labeled)
    repeats = max(1, math.ceil(wanted / max(len(labeled), 1)))
    return pd.concat(
        [labeled[["video_id", "label"]]] * repeats + [pseudo_labeled], ignore_index=True
    )


def retrain(
    *,
    frames: Path,
    split: Path,
    pseudo_labels: Path,
    previous: Path,
    out: Path,
    checkpoints: Path,
    method: str,
    labeled_share: float,
    action_train: TrainParams,
    alignability_train: ScheduleParams,
    metric: MetricParams,
    augment: AugmentParams,
    run: RunParams,
) -> Retraining:
    """Read `previous`/{action,alignability}.pt, retrain, write `out`/{action,alignability}.pt."""
    with running(run.device, run.threads) as runtime:
        store = FrameStore(frames)
        labeled = load_split(split).labeled
        training = training_clips(labeled, accepted_pseudo_labels(pseudo_labels), labeled_share)
        ids, labels = training.video_id.tolist(), training.label.astype(int).tolist()
        inputs = fingerprint(
            Path(frames) / "manifest.parquet", split, pseudo_labels, previous / "action.pt"
        )

        action = load_action_encoder(previous / "action.pt")
        action_config = {
            "train": action_train.model_dump(mode="json"),
            "augment": augment.model_dump(mode="json"),
            "inputs": inputs,
        }
        action_metrics = train_classifier(
            action.model,
            store=store,
            video_ids=ids,
            labels=labels,
            clip=action.clip,
            augment=augment,
            train=action_train,
            runtime=runtime,
            checkpoint_path=checkpoints / "action.pt",
            config=action_config,
            workers=run.workers,
            log_prefix="action_",
        )

        alignability = load_alignability_model(previous / "alignability.pt")
        alignability_metrics: dict[str, float] = {}
        if method == "finepseudo" and alignability_train.epochs > 0:
            alignability_config = {
                "train": alignability_train.model_dump(mode="json"),
                "metric": metric.model_dump(mode="json"),
                "inputs": inputs,
            }
            alignability_metrics = train_metric(
                alignability.model,
                store=store,
                video_ids=ids,
                labels=labels,
                clip=alignability.clip,
                augment=augment,
                metric=metric,
                train=alignability_train,
                runtime=runtime,
                checkpoint_path=checkpoints / "alignability.pt",
                config=alignability_config,
                workers=run.workers,
                log_prefix="alignability_",
            )
            # the score head follows the retrained encoder, fitted on true labels only
            alignability_metrics["score_fit_loss"] = calibrate_score(
                alignability,
                store=store,
                video_ids=labeled.video_id.tolist(),
                labels=labeled.label.astype(int).tolist(),
                metric=metric,
                batch_size=metric.batch_size,
                runtime=runtime,
                workers=run.workers,
            )
        if runtime.is_main:
            save_action_encoder(out / "action.pt", action, action_metrics)
            save_alignability_model(out / "alignability.pt", alignability, alignability_metrics)
            for name in ("action.pt", "alignability.pt"):
                (checkpoints / name).unlink(missing_ok=True)
        return Retraining(action_metrics, alignability_metrics, len(ids))

"""Step 5: retrain both encoders on the labeled clips plus the round's accepted pseudo-labels,
continuing from the previous round's weights.

The action encoder g trains by cross-entropy for a fixed budget, the same for every method:
`steps` optimiser steps, each batch holding the same share of labeled clips
(pipeline.train.mixed_sampler); labeled-only batches when the round accepted nothing. The
alignability model f trains by step 2's objective on the labeled and pseudo-labeled clips,
and only for finepseudo (the other methods never use it, so it passes through).
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import (
    AugmentParams,
    HealthParams,
    MetricParams,
    RetrainParams,
    RunParams,
    ScheduleParams,
)
from pipeline.data.frames import FrameStore
from pipeline.data.splits import load_split
from pipeline.health.checks import HealthReport
from pipeline.health.measure import action_checks, alignability_checks
from pipeline.health.record import saved_health
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
from pipeline.train.mixed_sampler import MixedBatchSampler
from pipeline.train.runtime import running
from pipeline.train.score_calibration import calibrate_score


@dataclass
class Retraining:
    action_metrics: dict[str, float]
    alignability_metrics: dict[str, float]
    training_clips: int  # labeled + accepted pseudo-labeled clips
    budget: dict[str, float]  # g's training budget this round: steps and batch composition
    health: HealthReport


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
    action_train: RetrainParams,
    alignability_train: ScheduleParams,
    metric: MetricParams,
    augment: AugmentParams,
    run: RunParams,
    health: HealthParams,
) -> Retraining:
    """Read `previous`/{action,alignability}.pt, retrain, write `out`/{action,alignability}.pt."""
    with running(run.device, run.threads, run.precision) as runtime:
        store = FrameStore(frames)
        label_split = load_split(split)
        labeled = label_split.labeled
        pseudo_labeled = accepted_pseudo_labels(pseudo_labels)
        # labeled clips first: the sampler tells them from the pseudo-labeled ones by index
        training = pd.concat([labeled[["video_id", "label"]], pseudo_labeled], ignore_index=True)
        ids, labels = training.video_id.tolist(), training.label.astype(int).tolist()
        sampler = MixedBatchSampler(
            labeled=len(labeled),
            pseudo_labeled=len(pseudo_labeled),
            batch_size=action_train.batch_size,
            labeled_share=labeled_share,
            steps_per_epoch=action_train.steps_per_epoch,
            seed=action_train.seed,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )
        budget = {
            "action_steps": float(action_train.steps),
            "action_batch_size": float(action_train.batch_size),
            "action_labeled_per_batch": float(sampler.labeled_per_batch),
            "action_pseudo_labeled_per_batch": float(
                action_train.batch_size - sampler.labeled_per_batch
            ),
        }
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
            batch_sampler=sampler,
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
        checks, clips = action_checks(
            action,
            store=store,
            split=label_split,
            settings=health,
            batch_size=action_train.batch_size,
            runtime=runtime,
            workers=run.workers,
        )
        action_metrics["health.healthy"] = float(all(c.healthy for c in checks))
        if alignability_metrics:  # f retrained: check it too
            f_checks, _ = alignability_checks(
                alignability,
                store=store,
                split=label_split,
                metric=metric,
                settings=health,
                score_loss=alignability_metrics["score_fit_loss"],
                batch_size=metric.batch_size,
                runtime=runtime,
                workers=run.workers,
            )
            alignability_metrics["health.healthy"] = float(all(c.healthy for c in f_checks))
            checks += f_checks
        report = HealthReport(clips, tuple(checks))
        if not alignability_metrics:  # f passes through unchanged, and so does its verdict
            verdict = saved_health(previous / "alignability.pt")
            if verdict is not None:
                alignability_metrics["health.healthy"] = float(verdict)
        if runtime.is_main:
            save_action_encoder(out / "action.pt", action, action_metrics)
            save_alignability_model(out / "alignability.pt", alignability, alignability_metrics)
            for name in ("action.pt", "alignability.pt"):
                (checkpoints / name).unlink(missing_ok=True)
        return Retraining(action_metrics, alignability_metrics, len(ids), budget, report)

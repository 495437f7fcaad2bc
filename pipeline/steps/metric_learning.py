"""Step 2: alignability-verification metric learning of f on the labeled clips, backbone
frozen, with the verification average precision on pairs of validation clips (the labeled
clips when there is no hold-out; never the test clips) every metric_learning.verify_every
epochs."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.align.distance import typical_distance
from pipeline.assessment.verification import Verification, verify_pairs
from pipeline.config import AugmentParams, EvaluateParams, HealthParams, MetricParams, RunParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import LabelSplit, load_split, monitoring_set
from pipeline.health.checks import HealthReport
from pipeline.health.measure import alignability_checks
from pipeline.inference.embedding import embed_videos
from pipeline.models.saved import (
    SavedAlignabilityModel,
    load_alignability_model,
    save_alignability_model,
)
from pipeline.models.score import AlignabilityScore
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.metric import train_metric
from pipeline.train.runtime import Runtime, running
from pipeline.train.score_calibration import calibrate_score


@dataclass
class MetricLearning:
    metrics: dict[str, float]
    verification: Verification
    monitored_subset: str  # which clips `verification` read: validation, or train without one
    health: HealthReport


def verifier(
    saved: SavedAlignabilityModel,
    *,
    store: FrameStore,
    split: LabelSplit,
    metric: MetricParams,
    evaluation: EvaluateParams,
    runtime: Runtime,
    workers: int,
) -> tuple[Callable[[], Verification], str]:
    """A function that embeds the monitoring clips (pipeline.data.splits.monitoring_set) with
    the current weights and verifies every pair of them, and the subset those clips are."""
    clips, subset = monitoring_set(split)
    clips = clips[clips["video_id"].isin(store.manifest["video_id"])]
    labels = clips.label.to_numpy(dtype=np.int64)

    def verify() -> Verification:
        embeddings = embed_videos(
            saved.model,
            store=store,
            video_ids=clips.video_id.tolist(),
            clip=saved.clip,
            batch_size=evaluation.batch_size,
            device=runtime.device,
            precision=runtime.precision,
            workers=workers,
        )
        return verify_pairs(
            saved.model, embeddings, labels, metric.distance, metric.gamma, metric.band
        )

    return verify, subset


def learn_alignability(
    *,
    frames: Path,
    split: Path,
    pretrained: Path,
    out: Path,
    checkpoint: Path,
    metric: MetricParams,
    augment: AugmentParams,
    evaluation: EvaluateParams,
    run: RunParams,
    health: HealthParams,
) -> MetricLearning:
    """Metric-learn the pretrained alignability model on the labeled clips; write it to `out`."""
    with running(run.device, run.threads, run.precision) as runtime:
        store = FrameStore(frames)
        label_split = load_split(split)  # read once: training, monitoring and health use it
        labeled = label_split.labeled
        saved = load_alignability_model(pretrained)
        # The score head starts afresh, scaled to the distance it will read; its first layer is
        # drawn from the metric's seed, so the same inputs give the same f in every run.
        torch.manual_seed(metric.seed)
        saved.model.score = AlignabilityScore(
            hidden=saved.encoder.score_hidden,
            distance_scale=typical_distance(metric.distance, saved.clip.frames),
        )
        verify, monitored = verifier(
            saved,
            store=store,
            split=label_split,
            metric=metric,
            evaluation=evaluation,
            runtime=runtime,
            workers=run.workers,
        )

        def monitor() -> dict[str, float]:
            result = verify()
            return {
                "verification_ap": result.average_precision,
                "distance_ap": result.distance_average_precision,
            }

        config = {
            "metric": metric.model_dump(mode="json"),
            "augment": augment.model_dump(mode="json"),
            "inputs": fingerprint(Path(frames) / "manifest.parquet", split, pretrained),
        }
        metrics = train_metric(
            saved.model,
            store=store,
            video_ids=labeled.video_id.tolist(),
            labels=labeled.label.astype(int).tolist(),
            clip=saved.clip,
            augment=augment,
            metric=metric,
            train=metric,
            runtime=runtime,
            checkpoint_path=checkpoint,
            config=config,
            monitor=monitor if runtime.is_main else None,
            workers=run.workers,
        )
        metrics["score_fit_loss"] = calibrate_score(
            saved,
            store=store,
            video_ids=labeled.video_id.tolist(),
            labels=labeled.label.astype(int).tolist(),
            metric=metric,
            batch_size=evaluation.batch_size,
            runtime=runtime,
            workers=run.workers,
        )
        checks, clips = alignability_checks(
            saved,
            store=store,
            split=label_split,
            metric=metric,
            settings=health,
            score_loss=metrics["score_fit_loss"],
            batch_size=evaluation.batch_size,
            runtime=runtime,
            workers=run.workers,
        )
        report = HealthReport(clips, tuple(checks))
        metrics["health.healthy"] = float(report.healthy)  # read by pseudo_label
        result = MetricLearning(metrics, verify(), monitored, report)
        if runtime.is_main:
            save_alignability_model(out, saved, metrics)
            Path(checkpoint).unlink(missing_ok=True)
        return result

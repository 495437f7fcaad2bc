"""Step 2: alignability-verification metric learning of f on the labeled clips, backbone
frozen, with the verification average precision on evaluation pairs after every epoch."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.align.distance import pairwise_distance, typical_distance
from pipeline.config import AugmentParams, EvaluateParams, MetricParams, RunParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import evaluation_set, load_split
from pipeline.evaluate.embedding import embed_videos
from pipeline.evaluate.verification import Verification, verify_pairs
from pipeline.models.saved import (
    SavedAlignabilityModel,
    load_alignability_model,
    save_alignability_model,
)
from pipeline.objectives.score import AlignabilityScore, fit_score
from pipeline.steps.fingerprint import fingerprint
from pipeline.train.metric import train_metric
from pipeline.train.runtime import Runtime, start_runtime, stop_runtime


@dataclass
class MetricLearning:
    metrics: dict[str, float]
    verification: Verification


def verifier(
    saved: SavedAlignabilityModel,
    store: FrameStore,
    split: Path,
    metric: MetricParams,
    evaluation: EvaluateParams,
    runtime: Runtime,
    workers: int,
):
    """A function that embeds the evaluation clips with the current weights and verifies
    every pair of them; shared by metric learning and retraining."""
    clips = evaluation_set(store, split, subset=evaluation.subset)
    labels = clips.label.to_numpy(dtype=np.int64)

    def verify() -> Verification:
        embeddings = embed_videos(
            saved.model,
            store,
            clips.video_id.tolist(),
            saved.clip,
            evaluation.batch_size,
            runtime.device,
            workers,
        )
        return verify_pairs(
            saved.model, embeddings, labels, metric.distance, metric.gamma, metric.band
        )

    return verify


def calibrate_score(
    saved: SavedAlignabilityModel,
    store: FrameStore,
    video_ids: list[str],
    labels: list[int],
    metric: MetricParams,
    batch_size: int,
    runtime: Runtime,
    workers: int,
) -> float:
    """Fit the score head to the trained encoder's distances between labeled clips (why:
    pipeline.objectives.score); at most `metric.score_fit_clips` of them, drawn with the
    metric's seed, so the pairs stay within memory on large datasets. Returns the fit's final
    loss."""
    max_clips = metric.score_fit_clips
    if len(video_ids) > max_clips:
        chosen = np.random.default_rng(metric.seed).choice(len(video_ids), max_clips, replace=False)
        video_ids = [video_ids[i] for i in chosen]
        labels = [labels[i] for i in chosen]
    embeddings = embed_videos(
        saved.model,
        store,
        video_ids,
        saved.clip,
        batch_size,
        runtime.device,
        workers,
        description="fitting the alignability score",
    )  # (B, T, d)
    distances = pairwise_distance(
        embeddings, embeddings, metric.distance, metric.gamma, metric.band
    )  # (B, B)
    device = saved.model.score.distance_scale.device
    return fit_score(
        saved.model.score,
        distances.to(device),
        torch.tensor(labels, device=device),
        steps=metric.score_fit_steps,
        lr=metric.score_fit_lr,
    )


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
) -> MetricLearning:
    """Metric-learn the pretrained alignability model on the labeled clips; write it to `out`."""
    runtime = start_runtime(run.device, run.threads)
    store = FrameStore(frames)
    labeled = load_split(split).labeled
    saved = load_alignability_model(pretrained)
    # The score head starts afresh, scaled to the distance it will read.
    saved.model.score = AlignabilityScore(
        hidden=saved.encoder.score_hidden,
        distance_scale=typical_distance(metric.distance, saved.clip.frames),
    )
    verify = verifier(saved, store, split, metric, evaluation, runtime, run.workers)

    def evaluate() -> dict[str, float]:
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
        store,
        labeled.video_id.tolist(),
        labeled.label.astype(int).tolist(),
        saved.clip,
        augment,
        metric,
        metric,
        runtime,
        checkpoint,
        config,
        evaluate=evaluate if runtime.is_main else None,
        workers=run.workers,
    )
    metrics["score_fit_loss"] = calibrate_score(
        saved,
        store,
        labeled.video_id.tolist(),
        labeled.label.astype(int).tolist(),
        metric,
        evaluation.batch_size,
        runtime,
        run.workers,
    )
    result = MetricLearning(metrics, verify())
    if runtime.is_main:
        save_alignability_model(out, saved, metrics)
        Path(checkpoint).unlink(missing_ok=True)
    stop_runtime(runtime)
    return result

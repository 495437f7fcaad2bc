"""Fitting the alignability score head to a trained encoder's distances, after metric learning
and after each round's retraining of f (why it is refitted: pipeline/models/score.py)."""

import numpy as np
import torch

from pipeline.align.distance import pairwise_distance
from pipeline.config import MetricParams
from pipeline.data.frames import FrameStore
from pipeline.inference.embedding import embed_videos
from pipeline.models.saved import SavedAlignabilityModel
from pipeline.models.score import fit_score
from pipeline.train.runtime import Runtime


def calibrate_score(
    saved: SavedAlignabilityModel,
    *,
    store: FrameStore,
    video_ids: list[str],
    labels: list[int],
    metric: MetricParams,
    batch_size: int,
    runtime: Runtime,
    workers: int,
) -> float:
    """Fit the score head to the trained encoder's distances between labeled clips (why:
    pipeline.models.score); at most `metric.score_fit_clips` of them, drawn with the
    metric's seed, so the pairs stay within memory on large datasets. Returns the fit's final
    loss."""
    max_clips = metric.score_fit_clips
    if len(video_ids) > max_clips:
        chosen = np.random.default_rng(metric.seed).choice(len(video_ids), max_clips, replace=False)
        video_ids = [video_ids[i] for i in chosen]
        labels = [labels[i] for i in chosen]
    embeddings = embed_videos(
        saved.model,
        store=store,
        video_ids=video_ids,
        clip=saved.clip,
        batch_size=batch_size,
        device=runtime.device,
        precision=runtime.precision,
        workers=workers,
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

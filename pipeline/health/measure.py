"""The figures of f and g that the health checks compare with chance, on held-out clips.

Clips: the split's validation hold-out (splits.validation_fraction > 0). Without one (or
when it holds no two clips of one class), the labeled training clips stand in, and the
report says so: then f's non-parametric accuracy leaves each clip out of its own exemplars,
and every figure is an optimistic one (the encoders trained on those clips), so an
unhealthy verdict there is all the more telling.
"""

import math

import numpy as np
import pandas as pd
import torch

from pipeline.align.distance import pairwise_distance
from pipeline.assessment.verification import verify_pairs
from pipeline.config import HealthParams, MetricParams
from pipeline.data.frames import FrameStore
from pipeline.data.splits import LabelSplit, monitoring_set
from pipeline.health.checks import (
    Check,
    above_chance,
    below_chance,
    embedding_spread,
    same_class_pair_share,
)
from pipeline.inference.embedding import embed_videos
from pipeline.inference.multiview import predict_videos
from pipeline.models.saved import SavedActionEncoder, SavedAlignabilityModel
from pipeline.train.runtime import Runtime


def health_clips(split: LabelSplit) -> tuple[pd.DataFrame, str, bool]:
    """video_id, label of the clips health is measured on (the monitoring clips,
    pipeline.data.splits.monitoring_set), a phrase naming them, and whether they are the
    labeled training clips (then f's exemplars are the clips themselves)."""
    clips, subset = monitoring_set(split)
    clips = clips[["video_id", "label"]]
    if subset == "validation":
        return clips, f"validation ({len(clips)} clips)", False
    return (
        clips,
        (
            f"the labeled training clips ({len(clips)}; the validation hold-out holds no two clips "
            "of one class)"
        ),
        True,
    )


def nonparametric_accuracy(
    pair_scores: np.ndarray,
    query_labels: np.ndarray,
    exemplar_labels: np.ndarray,
    classes: int,
    leave_self_out: bool,
) -> float:
    """Top-1 of the class whose exemplars score highest on average (pipeline.pseudo's
    non-parametric classifier); pair_scores (Q, E). With `leave_self_out` the queries are
    the exemplars and a clip's score against itself is left out."""
    scores = pair_scores.astype(np.float64).copy()
    if leave_self_out:
        np.fill_diagonal(scores, np.nan)
    means = np.full((len(scores), classes), -np.inf)
    for c in range(classes):
        members = scores[:, exemplar_labels == c]
        if members.size:
            with np.errstate(invalid="ignore"):
                counted = np.isfinite(members).sum(1)
                means[:, c] = np.where(
                    counted > 0, np.nansum(members, 1) / np.maximum(counted, 1), -np.inf
                )
    return float((means.argmax(1) == query_labels).mean())


@torch.no_grad()
def alignability_checks(
    saved: SavedAlignabilityModel,
    *,
    store: FrameStore,
    split: LabelSplit,
    metric: MetricParams,
    settings: HealthParams,
    score_loss: float,
    batch_size: int,
    runtime: Runtime,
    workers: int = 0,
) -> tuple[list[Check], str]:
    """f's checks: verification AP against the same-class pair share, the non-parametric
    accuracy (exemplars: the labeled clips) against 1/C, the embedding spread against
    collapse, and the score head's fit loss `score_loss` against ln 2."""
    clips, where, leave_self_out = health_clips(split)
    labels = clips.label.to_numpy(dtype=np.int64)
    classes = len(split.classes)

    def embed(ids: list[str]) -> torch.Tensor:
        return embed_videos(
            saved.model,
            store=store,
            video_ids=ids,
            clip=saved.clip,
            batch_size=batch_size,
            device=runtime.device,
            precision=runtime.precision,
            workers=workers,
            description="health: alignability encoder",
        )  # (N, T, d)

    embedded = embed(clips.video_id.tolist())
    labeled = split.labeled
    exemplars = embedded if leave_self_out else embed(labeled.video_id.tolist())
    exemplar_labels = labeled.label.to_numpy(dtype=np.int64)
    distances = pairwise_distance(embedded, exemplars, metric.distance, metric.gamma, metric.band)
    pair_scores = saved.model.score(distances.float().to(runtime.device)).cpu().numpy()  # (Q, E)
    accuracy = nonparametric_accuracy(pair_scores, labels, exemplar_labels, classes, leave_self_out)
    checks = [
        above_chance(
            "verification_ap",
            verify_pairs(
                saved.model, embedded, labels, metric.distance, metric.gamma, metric.band
            ).average_precision,
            same_class_pair_share(labels),
            settings.min_ratio,
        ),
        above_chance("f_accuracy", accuracy, 1.0 / classes, settings.min_ratio),
        Check("f_embedding_spread", embedding_spread(embedded), 0.0, settings.min_spread, True),
        below_chance("score_loss", score_loss, math.log(2.0), settings.max_loss_ratio),
    ]
    return checks, where


def action_checks(
    saved: SavedActionEncoder,
    *,
    store: FrameStore,
    split: LabelSplit,
    settings: HealthParams,
    batch_size: int,
    runtime: Runtime,
    workers: int = 0,
) -> tuple[list[Check], str]:
    """g's check: its top-1 (one central view per clip) against 1/C."""
    clips, where, _ = health_clips(split)
    probabilities = predict_videos(
        saved.model,
        store=store,
        video_ids=clips.video_id.tolist(),
        clip=saved.clip,
        windows=1,
        crops=1,
        batch_size=batch_size,
        device=runtime.device,
        precision=runtime.precision,
        workers=workers,
        description="health: action encoder",
    )  # (N, C)
    accuracy = float((probabilities.argmax(1) == clips.label.to_numpy()).mean())
    return [
        above_chance("g_accuracy", accuracy, 1.0 / len(split.classes), settings.min_ratio)
    ], where

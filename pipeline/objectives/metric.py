"""The alignability-verification metric-learning objective L_trip + lambda L_score and the
ablations of the paper's Table 5 (triplet only, score only)."""

from typing import Literal, get_args

import torch
from torch import nn

from pipeline.align.distance import pairwise_distance
from pipeline.config import MetricParams
from pipeline.models.alignability import AlignabilityModel
from pipeline.models.score import AlignabilityScore
from pipeline.objectives.triplet import alignability_triplet_loss
from pipeline.precision import full_precision

MetricLoss = Literal["triplet_score", "triplet", "score"]


def alignability_metric_loss(
    distances: torch.Tensor,
    labels: torch.Tensor,
    score: AlignabilityScore,
    margin: float,
    score_weight: float,
    loss: MetricLoss,
) -> dict[str, torch.Tensor]:
    """Losses of one class-balanced batch, distances (B, B) and labels (B,).

    Returns total (what to backpropagate), triplet, score and n_triplets (hard triplets).
    triplet_score: total = L_trip + score_weight * L_score.
    triplet: only L_trip shapes the encoder; the score head still learns, on detached
    distances, so that pseudo-labelling has a trained score to read.
    score: total = L_score; the triplet term is reported but not trained.
    """
    if loss not in get_args(MetricLoss):
        raise ValueError(
            f"metric loss must be one of {', '.join(get_args(MetricLoss))}; got {loss!r}"
        )
    triplet, n_triplets = alignability_triplet_loss(distances, labels, margin)
    if loss == "triplet":
        score_loss = score.loss(distances.detach(), labels)
        total = triplet + score_loss
    elif loss == "score":
        score_loss = score.loss(distances, labels)
        total = score_loss
        triplet = triplet.detach()
    else:
        score_loss = score.loss(distances, labels)
        total = triplet + score_weight * score_loss
    return {
        "total": total,
        "triplet": triplet,
        "score": score_loss,
        "n_triplets": torch.tensor(n_triplets, device=distances.device),
    }


class MetricObjective(nn.Module):
    """(clips (B, 3, T, H, W), labels (B,)) -> L_trip + lambda L_score and their parts."""

    def __init__(self, model: AlignabilityModel, metric: MetricParams) -> None:
        super().__init__()
        self.model, self.metric = model, metric

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        clips, labels = batch
        embeddings = self.model(clips).float()  # (B, T, d)
        with full_precision(clips.device):
            distances = pairwise_distance(
                embeddings, embeddings, self.metric.distance, self.metric.gamma, self.metric.band
            )  # (B, B)
            losses = alignability_metric_loss(
                distances,
                labels,
                self.model.score,
                margin=self.metric.margin,
                score_weight=self.metric.score_weight,
                loss=self.metric.loss,
            )
        return {
            "loss": losses["total"],
            "triplet_loss": losses["triplet"],
            "score_loss": losses["score"],
            "hard_triplets": losses["n_triplets"].float(),
        }

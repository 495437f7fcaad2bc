"""Alignability verification: how well the learned score tells same-class pairs of clips from
different-class pairs (the average precision of the paper's Table 8)."""

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.align.distance import DistanceKind, pairwise_distance
from pipeline.models.alignability import AlignabilityModel


@dataclass
class Verification:
    average_precision: float  # of the learned alignability score
    distance_average_precision: float  # of the raw distance, smaller meaning same class
    same_class_scores: np.ndarray
    different_class_scores: np.ndarray


@torch.no_grad()
def verify_pairs(
    model: AlignabilityModel,
    embeddings: torch.Tensor,
    labels: np.ndarray,
    kind: DistanceKind,
    gamma: float,
    band: int = 0,
) -> Verification:
    """Score every unordered pair of the embedded clips (N, T, d) with labels (N,)."""
    distances = pairwise_distance(embeddings, embeddings, kind, gamma, band)  # (N, N)
    scores = model.score(distances.float()).cpu().numpy()
    upper = np.triu_indices(len(labels), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    pair_scores, pair_distances = scores[upper], distances.cpu().numpy()[upper]
    if same.all() or not same.any():
        raise ValueError("verification needs both same-class and different-class pairs")
    # imported here: sklearn.metrics costs about a second of start-up (scipy.stats with it)
    # in every stage that imports this module, and only this function uses it
    from sklearn.metrics import average_precision_score

    return Verification(
        average_precision=float(average_precision_score(same, pair_scores)),
        distance_average_precision=float(average_precision_score(same, -pair_distances)),
        same_class_scores=pair_scores[same],
        different_class_scores=pair_scores[~same],
    )

"""The learnable alignability score s(X, Y) = sigmoid(phi(D(X, Y))) (paper, section 3.1).

phi is a 2-layer MLP on the scalar distance. Two choices keep it well-behaved from the first
step: the distance is divided by `distance_scale` (pipeline.align.distance.typical_distance:
the clip length for softDTW, which sums about one cosine cost in [0, 2] per frame, 1 for the
cosine distances), so phi sees inputs of order one whatever the distance and clip length;
and its output layer starts at zero, so every initial score is exactly 0.5, far from
saturation. A random initial phi would have a random slope, and the score loss would push
the encoder's distances up or down by chance; from zero, the first steps fit phi to the
distances, and the gradient reaches the encoder once phi has learned which way to point.

Trained beside the encoder, phi moves by about one learning rate per step; a CPU preset
takes a hundred steps or so, after which phi is still nearly flat and every class score of
the non-parametric classifier the same. `fit_score` therefore fits phi to convergence on
the finished encoder's distances of the labeled pairs, at their own scale, before the
score is used.
"""

import torch
import torch.nn.functional as F
from torch import nn


class AlignabilityScore(nn.Module):
    """Maps distances (any shape) to alignability logits or scores in (0, 1)."""

    def __init__(self, *, hidden: int, distance_scale: float = 1.0) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if not distance_scale > 0.0:
            raise ValueError(f"distance_scale must be positive, got {distance_scale}")
        # a buffer, so a checkpoint restores the scale its phi was trained with
        self.register_buffer("distance_scale", torch.tensor(float(distance_scale)))
        self.phi = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.phi[2].weight)
        nn.init.zeros_(self.phi[2].bias)

    def logits(self, distances: torch.Tensor) -> torch.Tensor:
        """phi(D / distance_scale), same shape as distances."""
        x = (distances / self.distance_scale).unsqueeze(-1)  # (..., 1)
        return self.phi(x).squeeze(-1)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """Alignability scores sigmoid(phi(D)), same shape as distances."""
        return torch.sigmoid(self.logits(distances))

    def loss(self, distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the pairs of a batch, distances (B, B) and labels (B,):
        target 1 for same-class pairs, 0 otherwise; the pairs (a, a) are left out.

        Same-class and different-class pairs weigh half each, as in the paper's verification
        pairs (one positive and one negative per anchor). A class-balanced batch of P classes
        holds about P times more different-class pairs; unweighted, they would teach the score
        that nothing aligns, and every class score would sit near zero.
        """
        batch = labels.shape[0]
        if labels.dim() != 1 or distances.shape != (batch, batch):
            raise ValueError(
                f"distances must be (B, B) for labels (B,), got {tuple(distances.shape)} and "
                f"{tuple(labels.shape)}"
            )
        off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=distances.device)  # (B, B)
        same = labels[:, None] == labels[None, :]  # (B, B)
        logits = self.logits(distances)  # (B, B)
        losses = F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")
        halves = [
            losses[off_diagonal & kind].mean()
            for kind in (same, ~same)
            if (off_diagonal & kind).any()
        ]
        return torch.stack(halves).mean()


def fit_score(
    score: AlignabilityScore,
    distances: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    lr: float,
) -> float:
    """Refit `score` in place to the pairwise distances (B, B) of clips with labels (B,),
    by `score.loss` with `steps` steps of full-batch Adam at learning rate `lr` from a zero
    output layer; returns the final loss.

    distance_scale becomes the mean distance of the pairs (when it is above 0), so phi reads
    inputs of order one whatever the encoder has done to the spread of its distances.
    """
    batch = labels.shape[0]
    distances, labels = distances.detach().float(), labels.to(distances.device)
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=distances.device)  # (B, B)
    mean_distance = distances[off_diagonal].mean()
    with torch.no_grad():
        # An encoder that embeds every clip alike (a random one can collapse so) leaves all
        # distances at 0: keep the scale, and the fit ends at a constant score.
        if mean_distance > 0.0:
            score.distance_scale.fill_(mean_distance)
        nn.init.zeros_(score.phi[2].weight)
        nn.init.zeros_(score.phi[2].bias)
    optimizer = torch.optim.Adam(score.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = score.loss(distances, labels)
            loss.backward()
            optimizer.step()
    return float(loss.detach())

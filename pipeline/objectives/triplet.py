"""Alignability triplet loss with hard-negative mining (paper, section 3.1).

Every same-class pair (a, p), a != p, of a batch is a positive; a clip n of another class is
a hard negative of it when D(a, n) < D(a, p) + margin, i.e. exactly when its hinge
max(0, D(a, p) - D(a, n) + margin) is positive. The loss averages the hinge over those.
"""

import torch


def _check(distances: torch.Tensor, labels: torch.Tensor) -> None:
    batch = labels.shape[0]
    if labels.dim() != 1 or distances.shape != (batch, batch):
        raise ValueError(
            f"distances must be (B, B) for labels (B,), got {tuple(distances.shape)} and "
            f"{tuple(labels.shape)}"
        )


def hard_triplets(distances: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Indices (K, 3) of the triplets (anchor, positive, negative) whose negative is hard,
    from distances (B, B) and labels (B,)."""
    _check(distances, labels)
    same = labels[:, None] == labels[None, :]  # (B, B)
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)  # (B, B)
    d = distances.detach()
    hard = d[:, None, :] < d[:, :, None] + margin  # (B, B, B): [a, p, n]
    keep = positive[:, :, None] & ~same[:, None, :] & hard  # (B, B, B)
    return keep.nonzero()  # (K, 3)


def alignability_triplet_loss(
    distances: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[torch.Tensor, int]:
    """Mean hinge max(0, D(a, p) - D(a, n) + margin) over the hard triplets of a batch, and
    how many there were. With none, the loss is a zero still connected to the graph."""
    triplets = hard_triplets(distances, labels, margin)  # (K, 3)
    if len(triplets) == 0:
        return distances.sum() * 0.0, 0
    a, p, n = triplets.unbind(dim=1)  # (K,) each
    hinge = (distances[a, p] - distances[a, n] + margin).clamp(min=0.0)  # (K,)
    return hinge.mean(), len(triplets)

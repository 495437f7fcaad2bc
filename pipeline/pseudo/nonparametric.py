"""The non-parametric classifier of collaborative pseudo-labelling (paper, section 3.2):
per-class exemplars, class scores S_c(U) = mean alignability score of U against the
exemplars of class c, and p_f = softmax(S / tau)."""

import numpy as np
import torch


def select_exemplars(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into labels of K_c = min(per_class, n_c) clips drawn without replacement from
    each class c, grouped by class in ascending label order."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, min(per_class, len(members)), replace=False))
    return np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)


def class_scores(
    pair_scores: torch.Tensor, exemplar_labels: torch.Tensor | np.ndarray, num_classes: int
) -> torch.Tensor:
    """Mean alignability score over each class's exemplars: (Nu, Ne) -> (Nu, C).

    A class without exemplars scores -inf, so it gets probability 0 from
    nonparametric_probs.
    """
    exemplar_labels = torch.as_tensor(exemplar_labels, device=pair_scores.device).long()
    if pair_scores.dim() != 2 or exemplar_labels.shape != (pair_scores.shape[1],):
        raise ValueError(
            f"pair_scores must be (Nu, Ne) with exemplar_labels (Ne,), got "
            f"{tuple(pair_scores.shape)} and {tuple(exemplar_labels.shape)}"
        )
    if len(exemplar_labels):
        low, high = int(exemplar_labels.min()), int(exemplar_labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"exemplar labels must lie in [0, {num_classes}), got {low}..{high}")
    one_hot = torch.nn.functional.one_hot(exemplar_labels, num_classes).to(pair_scores.dtype)
    counts = one_hot.sum(dim=0)  # (C,)
    sums = pair_scores @ one_hot  # (Nu, C)
    means = sums / counts.clamp(min=1.0)  # (Nu, C)
    return means.masked_fill(counts == 0, float("-inf"))


def nonparametric_probs(class_scores: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """p_f = softmax(S / tau) over classes: (Nu, C) -> (Nu, C)."""
    if not tau > 0.0:
        raise ValueError(f"tau must be positive, got {tau}")
    return torch.softmax(class_scores / tau, dim=1)

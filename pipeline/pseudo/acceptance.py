"""Which pseudo-labels to accept: the strategies the paper compares in its Table 6.

confidence     argmax p_g, accepted when max p_g >= threshold.
uncertainty    as confidence, and the uncertainty of the top class (the std of its probability
               over stochastic passes, computed by the caller) <= max_uncertainty.
verification   as confidence, and the alignability class score of the chosen label
               S_label >= verification_threshold.
collaborative  p = (p_f + p_g) / 2, label argmax p, accepted when max p >= threshold
               (pseudo_label.collaborative_threshold, the paper's delta = 0.6). The rule is
               a filter, as the paper's Table 6 shows (fewer collaborative pseudo-labels
               than confidence ones, and more accurate): a clip g is sure of (max p_g >= 0.6)
               is rejected when f gives its class too little, and one g is unsure of is
               accepted when f agrees strongly. The paper "adds" p_f and p_g; read as a bar
               of 0.6 on the sum (0.3 on the average), the rule would accept every clip the
               confidence rule accepts, a superset that Table 6 rules out.
"""

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

Strategy = Literal["confidence", "uncertainty", "verification", "collaborative"]
_NEEDS = {"uncertainty": "uncertainty", "verification": "class_scores", "collaborative": "p_f"}


@dataclass(frozen=True)
class Decision:
    """Per clip: the pseudo-label, its confidence and whether it is accepted."""

    label: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float64
    accepted: np.ndarray  # (N,) bool


def _array(
    name: str, value: torch.Tensor | np.ndarray, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value, dtype=np.float64)
    if shape is not None and value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    return value


def decide(
    strategy: Strategy,
    p_g: torch.Tensor | np.ndarray,
    threshold: float,
    p_f: torch.Tensor | np.ndarray | None = None,
    class_scores: torch.Tensor | np.ndarray | None = None,
    uncertainty: torch.Tensor | np.ndarray | None = None,
    verification_threshold: float = 0.6,
    max_uncertainty: float = 0.1,
) -> Decision:
    """Pseudo-labels of N clips from the action encoder's class probabilities p_g (N, C) and,
    depending on the strategy, p_f (N, C), class_scores (N, C) or uncertainty (N,)."""
    if strategy not in get_args(Strategy):
        raise ValueError(
            f"pseudo-label strategy must be one of {', '.join(get_args(Strategy))}; "
            f"got {strategy!r}"
        )
    given = {"p_f": p_f, "class_scores": class_scores, "uncertainty": uncertainty}
    needed = _NEEDS.get(strategy)
    if needed is not None and given[needed] is None:
        raise ValueError(f"strategy {strategy!r} needs {needed}; it was not given")
    p_g = _array("p_g", p_g)
    if p_g.ndim != 2:
        raise ValueError(f"p_g must have shape (N, C), got {p_g.shape}")
    probs = p_g
    if strategy == "collaborative":
        probs = 0.5 * (_array("p_f", p_f, p_g.shape) + p_g)  # (N, C)
    label = probs.argmax(axis=1)  # (N,)
    confidence = probs[np.arange(len(probs)), label]  # (N,)
    accepted = confidence >= threshold
    if strategy == "uncertainty":
        accepted &= _array("uncertainty", uncertainty, label.shape) <= max_uncertainty
    elif strategy == "verification":
        scores = _array("class_scores", class_scores, p_g.shape)  # (N, C)
        accepted &= scores[np.arange(len(scores)), label] >= verification_threshold
    return Decision(label=label.astype(np.int64), confidence=confidence, accepted=accepted)

"""A health check compares one figure with what a model that learned nothing would score.

A figure that should rise (verification AP, accuracy, embedding spread) is healthy when it
reaches `threshold`; a loss that should fall (score loss, GITDL loss) when it is at most
`threshold`. Thresholds are set relative to the chance level by the params (health.*), so a
report says both how far from chance the figure is and where the bar stood.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

HEALTHY, UNHEALTHY = "healthy", "unhealthy"


@dataclass(frozen=True)
class Check:
    """One figure, its chance level, the bar it had to clear and whether it did."""

    name: str
    value: float
    chance: float
    threshold: float
    higher_is_better: bool

    @property
    def healthy(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return (
            self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold
        )

    def describe(self) -> str:
        verdict = HEALTHY if self.healthy else UNHEALTHY
        bar = ">=" if self.higher_is_better else "<="
        return (
            f"{self.name} {self.value:.4g} (chance {self.chance:.4g}, needs {bar} "
            f"{self.threshold:.4g}): {verdict}"
        )


@dataclass(frozen=True)
class HealthReport:
    """Every check of a stage, on which clips they were measured, and the verdict."""

    clips: str  # which clips the figures come from, e.g. "validation (120 clips)"
    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        return all(check.healthy for check in self.checks)

    @property
    def verdict(self) -> str:
        return HEALTHY if self.healthy else UNHEALTHY

    def metrics(self) -> dict[str, float]:
        """health.<check> (the figure), health.<check>.chance and health.healthy (1 or 0)."""
        out = {"health.healthy": float(self.healthy)}
        for check in self.checks:
            out[f"health.{check.name}"] = check.value
            out[f"health.{check.name}.chance"] = check.chance
        return out

    def text(self, stage: str) -> str:
        lines = [f"health of {stage}: {self.verdict}, measured on {self.clips}"]
        return "\n".join(lines + [f"  {check.describe()}" for check in self.checks])

    def to_json(self, stage: str) -> dict:
        return {
            "stage": stage,
            "verdict": self.verdict,
            "clips": self.clips,
            "checks": [asdict(c) | {"healthy": c.healthy} for c in self.checks],
        }


def above_chance(name: str, value: float, chance: float, min_ratio: float) -> Check:
    """A figure that must reach `min_ratio` times its chance level."""
    return Check(name, float(value), float(chance), min_ratio * float(chance), True)


def below_chance(name: str, loss: float, chance_loss: float, max_ratio: float) -> Check:
    """A loss that must fall to `max_ratio` times its value for a model that learned nothing."""
    return Check(name, float(loss), float(chance_loss), max_ratio * float(chance_loss), False)


def same_class_pair_share(labels: np.ndarray) -> float:
    """Share of the unordered pairs of clips that are of one class: the verification AP of
    a score that knows nothing (AP of random scores is the positive share)."""
    counts = np.unique(labels, return_counts=True)[1]
    pairs = len(labels) * (len(labels) - 1) / 2
    return float((counts * (counts - 1) / 2).sum() / pairs)


def embedding_spread(embeddings: torch.Tensor) -> float:
    """How far clips' frame embeddings (N, T, d) lie from one another, relative to their
    size: the std across clips of each frame position's embedding, averaged over positions
    and dimensions, over the mean norm of a frame embedding. 0 when every clip embeds the
    same sequence (collapse: softDTW then finds every pair equally far apart); about
    1 / sqrt(d) for unrelated directions."""
    frames = embeddings.float()
    size = frames.norm(dim=-1).mean().clamp_min(1e-12)
    return float(frames.std(0).mean() / size)

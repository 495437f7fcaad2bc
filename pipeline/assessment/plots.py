"""Figures people would rather see than read, saved as PNG for MLflow and DVC."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: stages run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.atomic import atomic_output  # noqa: E402


def _save(figure: plt.Figure, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_confusion(confusion: np.ndarray, classes: list[str], path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix: each true class's row shows where its clips went."""
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.3 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(side + 1, side))
    image = axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
    axis.set_yticks(range(len(classes)), classes, fontsize=6)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046)
    _save(figure, path)


def plot_score_histograms(
    same_class: np.ndarray, different_class: np.ndarray, path: str | Path, title: str
) -> None:
    """Alignability scores of same-class vs different-class pairs: the gap is what verifies."""
    figure, axis = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    axis.hist(
        different_class,
        bins=bins,
        alpha=0.6,
        density=True,
        label=f"different class ({len(different_class)})",
    )
    axis.hist(
        same_class, bins=bins, alpha=0.6, density=True, label=f"same class ({len(same_class)})"
    )
    axis.set_xlabel("alignability score")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.legend()
    _save(figure, path)

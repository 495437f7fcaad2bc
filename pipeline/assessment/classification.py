"""Accuracy figures of a classifier from its probabilities and the true labels."""

import numpy as np
import pandas as pd


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of videos whose true class is among the k most probable (k capped at #classes)."""
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]: (classes, classes)."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def per_class_table(confusion: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per class: its test clips, correct ones and accuracy (NaN without clips)."""
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
    return pd.DataFrame(
        {"class": classes, "clips": support, "correct": correct, "accuracy": accuracy}
    )


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1, top-5 and mean per-class accuracy (over classes that have test clips)."""
    predicted = probabilities.argmax(axis=1)
    confusion = confusion_matrix(predicted, labels, probabilities.shape[1])
    support = confusion.sum(axis=1)
    present = support > 0
    return {
        "top1": top_k_accuracy(probabilities, labels, 1),
        "top5": top_k_accuracy(probabilities, labels, 5),
        "mean_class_accuracy": float((np.diag(confusion)[present] / support[present]).mean()),
    }

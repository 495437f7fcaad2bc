"""The pseudo-label table a round writes (`round_<r>.parquet`) and the one reader training uses.

Columns: video_id, round, label (model class index), label_name, confidence, accepted, the
two encoders' own top labels and confidences (f_* from the alignability encoder's
non-parametric classifier, -1/NaN when the strategy does not use it; g_* from the action
encoder) and true_label: the model class index the dataset annotates (-1 for a class the
model does not know, NaN where the dataset gives no label). true_label is there for
diagnostics (pseudo-label accuracy); training reads only `accepted_pseudo_labels`. strategy:
the rule the round used (pseudo_label.strategy, or confidence when f's health check failed and
pseudo_label.unhealthy_alignability fell back to it; none for supervised).
"""

from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_output

COLUMNS = [
    "video_id",
    "round",
    "label",
    "label_name",
    "confidence",
    "accepted",
    "f_label",
    "f_confidence",
    "g_label",
    "g_confidence",
    "true_label",
    "strategy",
]
TRAINING_COLUMNS = ["video_id", "label", "accepted"]


def write_round_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a round's table atomically, refusing one with missing or extra columns."""
    if list(table.columns) != COLUMNS:
        raise ValueError(
            f"{path}: pseudo-label table columns must be {COLUMNS}, got {list(table.columns)}"
        )
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)


def accepted_pseudo_labels(path: str | Path) -> pd.DataFrame:
    """video_id, label of the accepted pseudo-labels: the only part of a round training sees."""
    table = pd.read_parquet(path, columns=TRAINING_COLUMNS)
    accepted = table[table["accepted"]]
    return accepted[["video_id", "label"]].astype({"label": "int64"}).reset_index(drop=True)


def _accepted_accuracy(labels: pd.Series, truth: pd.Series) -> float | None:
    """Share of accepted pseudo-labels that match the known truth; None when none is known."""
    known = truth.notna()
    return float((labels[known] == truth[known]).mean()) if known.any() else None


def round_statistics(
    table: pd.DataFrame, confidence_threshold: float | None = None
) -> dict[str, float]:
    """How many pseudo-labels were accepted and, where the truth is known, how many are right.

    With `confidence_threshold`, also what g's confidence rule would have accepted from the
    same models (`confidence_pseudo_labels`, `confidence_pseudo_label_accuracy`), so every
    strategy's round is compared with confidence on identical clips. Diagnostics only: the
    truth is the unlabeled clips' hidden labels and never chooses anything.
    """
    accepted = table[table["accepted"]]
    known = table["true_label"].notna()
    stats = {
        "pseudo_labels": float(len(accepted)),
        "pseudo_label_share": float(len(accepted) / max(len(table), 1)),
    }
    if known.any():
        truth = table["true_label"]
        accuracy = _accepted_accuracy(accepted["label"], accepted["true_label"])
        if accuracy is not None:
            stats["pseudo_label_accuracy"] = accuracy
        stats["g_accuracy_unlabeled"] = float((table.loc[known, "g_label"] == truth[known]).mean())
        if (table["f_label"] >= 0).any():
            stats["f_accuracy_unlabeled"] = float(
                (table.loc[known, "f_label"] == truth[known]).mean()
            )
        stats["combined_accuracy_unlabeled"] = float(
            (table.loc[known, "label"] == truth[known]).mean()
        )
    if confidence_threshold is not None:
        confident = table[table["g_confidence"] >= confidence_threshold]
        stats["confidence_pseudo_labels"] = float(len(confident))
        accuracy = _accepted_accuracy(confident["g_label"], confident["true_label"])
        if accuracy is not None:
            stats["confidence_pseudo_label_accuracy"] = accuracy
    return stats

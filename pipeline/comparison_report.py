"""The comparison of label splits as files a researcher reads (CSV, Markdown, a plot) and as an
MLflow run that holds them beside the runs they summarise."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from pipeline.atomic import atomic_output

COMPARISON_TAG = "finepseudo.comparison"


def _label(fraction: float) -> str:
    return f"{fraction * 100:g}% labels"


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}"


def _markdown(table: pd.DataFrame) -> str:
    header = [str(column) for column in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join("" if pd.isna(cell) else str(cell) for cell in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """accuracy: one row per method (and `by` values) and label fraction, with top1_mean,
    top1_std, n_seeds...; pseudo_labels: one row per method, fraction and round."""

    accuracy: pd.DataFrame
    pseudo_labels: pd.DataFrame
    by: tuple[str, ...] = ()

    def _name(self, table: pd.DataFrame) -> pd.Series:
        """Row names: the method, then `key=value` of each grouping param."""
        names = table["method"].astype(str)
        for key in self.by:
            names = names + f" {key}=" + table[key].astype(str)
        return names

    def top1_markdown(self) -> str:
        """Top-1 (%) as mean ± std over split seeds: rows methods, columns label fractions."""
        table = self.accuracy.assign(
            name=self._name(self.accuracy),
            cell=[
                f"{_percent(mean)} ± {_percent(std)} (n={n})"
                for mean, std, n in zip(
                    self.accuracy["top1_mean"],
                    self.accuracy["top1_std"],
                    self.accuracy["n_seeds"],
                    strict=True,
                )
            ],
        )
        wide = table.pivot(index="name", columns="fraction", values="cell").reindex(
            pd.unique(table["name"])
        )
        wide.columns = [_label(fraction) for fraction in wide.columns]
        return _markdown(wide.rename_axis("method").reset_index())

    def pseudo_label_markdown(self) -> str:
        """Accepted pseudo-labels and their accuracy (%) per round, means over split seeds."""
        table = self.pseudo_labels
        if table.empty:
            return "No pseudo-label rounds."
        table = table.assign(
            name=self._name(table) + ", " + table["fraction"].map(_label),
            cell=[
                f"{count:.0f} ({_percent(accuracy)})"
                for count, accuracy in zip(
                    table["pseudo_labels_mean"], table["pseudo_label_accuracy_mean"], strict=True
                )
            ],
        )
        wide = table.pivot(index="name", columns="round", values="cell").reindex(
            pd.unique(table["name"])
        )
        wide.columns = [f"round {number}" for number in wide.columns]
        return _markdown(wide.rename_axis("method, labels").reset_index())

    def markdown(self) -> str:
        return (
            "## Top-1 accuracy (%), mean ± std over split seeds\n\n"
            + self.top1_markdown()
            + "\n\n## Pseudo-labels per round: count (accuracy %), means over split seeds\n\n"
            + self.pseudo_label_markdown()
            + "\n"
        )

    def plot(self, path: Path) -> None:
        """Top-1 against the label fraction per method, the std over seeds as error bars."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        table = self.accuracy.assign(name=self._name(self.accuracy)).sort_values("fraction")
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, rows in table.groupby("name", sort=False):
            axes.errorbar(
                100 * rows["fraction"],
                100 * rows["top1_mean"],
                yerr=100 * rows["top1_std"],
                marker="o",
                capsize=4,
                label=name,
            )
        axes.set_xlabel("labeled training clips (%)")
        axes.set_ylabel("top-1 accuracy (%)")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
        plt.close(figure)

    def save(self, folder: Path) -> list[Path]:
        """Write label_splits.csv, pseudo_labels.csv, comparison.md and top1_vs_fraction.png."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in (
            ("label_splits.csv", self.accuracy),
            ("pseudo_labels.csv", self.pseudo_labels),
        ):
            with atomic_output(folder / name) as tmp:
                table.to_csv(tmp, index=False)
        with atomic_output(folder / "comparison.md") as tmp:
            tmp.write_text(self.markdown())
        self.plot(folder / "top1_vs_fraction.png")
        return [
            folder / name
            for name in (
                "label_splits.csv",
                "pseudo_labels.csv",
                "comparison.md",
                "top1_vs_fraction.png",
            )
        ]


def log_comparison(
    client: MlflowClient, experiment_id: str, files: Sequence[Path], description: Mapping[str, str]
) -> str:
    """Log the comparison's files to a new run named "comparison" in the experiment it compares;
    `description` (the filters and grouping it used) becomes the run's params."""
    run = client.create_run(experiment_id, run_name="comparison", tags={COMPARISON_TAG: "true"})
    run_id = run.info.run_id
    for key, value in description.items():
        client.log_param(run_id, key, value[:500])
    for path in files:
        client.log_artifact(run_id, str(path), "comparison")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id

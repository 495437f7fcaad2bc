"""The label-split comparison on hand-made runs in a real (temporary) MLflow SQLite store."""

import statistics
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.cli import main
from pipeline.compare import compare_runs, parse_where
from pipeline.comparison_report import COMPARISON_TAG
from pipeline.config import parse_params
from pipeline.tracking import CONFIG_TAG, PIPELINE_TAG, STAGE_TAG, parent_run_id


@pytest.fixture
def client(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    return MlflowClient(tracking_uri)


def pipeline_run(
    client: MlflowClient,
    experiment: str,
    method: str,
    fraction: float,
    seed: int,
    top1: float,
    **sections: dict,
) -> str:
    """A parent run as the pipeline creates it, with the metrics its evaluate stage logs."""
    params = parse_params(
        {
            "dataset": {"name": experiment},
            "run": {"method": method, "fraction": fraction, "seed": seed},
        }
        | sections
    )
    parent = parent_run_id(client, params)
    for name, value in {
        "top1": top1,
        "top5": min(1.0, top1 + 0.3),
        "mean_class_accuracy": top1 - 0.01,
    }.items():
        client.log_metric(parent, name, value)
    return parent


def round_run(
    client: MlflowClient,
    parent: str,
    number: int,
    count: float,
    accuracy: float,
    start: int,
    strategy: str = "collaborative",
) -> None:
    """A pseudo_label@round_<number> child run with its statistics."""
    experiment = client.get_run(parent).info.experiment_id
    stage = f"pseudo_label@round_{number}"
    child = client.create_run(
        experiment,
        start_time=start,
        run_name=stage,
        tags={STAGE_TAG: stage, "mlflow.parentRunId": parent, "strategy": strategy},
    )
    client.log_metric(child.info.run_id, "pseudo_labels", count)
    client.log_metric(child.info.run_id, "pseudo_label_accuracy", accuracy)
    client.set_terminated(child.info.run_id, "FINISHED")


TOP1 = {  # (method, fraction) -> top-1 of split seeds 0, 1, 2
    ("supervised", 0.05): [0.30, 0.34, 0.29],
    ("supervised", 0.1): [0.41, 0.45, 0.40],
    ("finepseudo", 0.05): [0.38, 0.43, 0.40],
    ("finepseudo", 0.1): [0.52, 0.55, 0.50],
}


def test_top1_table_is_mean_and_std_over_split_seeds(client: MlflowClient) -> None:
    for (method, fraction), values in TOP1.items():
        for seed, top1 in enumerate(values):
            pipeline_run(client, "cmp-table1", method, fraction, seed, top1)

    comparison = compare_runs(client, "cmp-table1")
    table = comparison.accuracy.set_index(["method", "fraction"])
    assert sorted(table.index) == sorted(TOP1)
    for key, values in TOP1.items():
        assert table.loc[key, "top1_mean"] == pytest.approx(statistics.fmean(values))
        assert table.loc[key, "top1_std"] == pytest.approx(statistics.pstdev(values))
        assert table.loc[key, "n_seeds"] == 3
        assert table.loc[key, "seeds"] == "0 1 2"
    markdown = comparison.top1_markdown().splitlines()
    assert markdown[0] == "| method | 5% labels | 10% labels |"
    mean, std = (
        statistics.fmean(TOP1["finepseudo", 0.1]),
        statistics.pstdev(TOP1["finepseudo", 0.1]),
    )
    assert f"| {100 * mean:.1f} ± {100 * std:.1f} (n=3) |" in next(
        line for line in markdown if "finepseudo" in line
    )


def test_latest_finished_run_of_a_pipeline_run_counts(client: MlflowClient) -> None:
    first = pipeline_run(client, "cmp-latest", "finepseudo", 0.1, 0, 0.10)
    tags = {k: v for k, v in client.get_run(first).data.tags.items() if not k.startswith("mlflow.")}
    experiment = client.get_run(first).info.experiment_id
    start = client.get_run(first).info.start_time
    for offset, status, top1 in ((1000, "FINISHED", 0.90), (2000, "FAILED", 0.50)):
        again = client.create_run(experiment, start_time=start + offset, tags=tags)
        client.log_metric(again.info.run_id, "top1", top1)
        client.set_terminated(again.info.run_id, status)
    unfinished = client.create_run(experiment, start_time=start + 3000, tags=tags)  # no top-1 yet
    client.set_terminated(unfinished.info.run_id, "FINISHED")

    accuracy = compare_runs(client, "cmp-latest").accuracy
    assert accuracy["top1_mean"].tolist() == [pytest.approx(0.90)]
    assert accuracy["n_seeds"].tolist() == [1]


def test_settings_are_kept_apart_filtered_or_grouped(client: MlflowClient) -> None:
    for strategy, base in (("collaborative", 0.6), ("confidence", 0.5)):
        for seed in (0, 1):
            pipeline_run(
                client,
                "cmp-ablation",
                "finepseudo",
                0.1,
                seed,
                base + seed / 10,
                pseudo_label={"strategy": strategy},
            )

    with pytest.raises(ValueError, match=r"differ in \['pseudo_label.strategy'\]"):
        compare_runs(client, "cmp-ablation")
    confidence = compare_runs(client, "cmp-ablation", where={"pseudo_label.strategy": "confidence"})
    assert confidence.accuracy["top1_mean"].tolist() == [pytest.approx(0.55)]
    # Conditions are read as YAML values, so they match however the value was logged.
    typed = compare_runs(
        client,
        "cmp-ablation",
        where={
            "augment.hflip": "false",
            "pseudo_label.threshold": "0.60",
            "pseudo_label.strategy": "collaborative",
        },
    )
    assert typed.accuracy["top1_mean"].tolist() == [pytest.approx(0.65)]

    grouped = compare_runs(client, "cmp-ablation", by=["pseudo_label.strategy"])
    rows = grouped.accuracy.set_index("pseudo_label.strategy")["top1_mean"]
    assert rows.to_dict() == {
        "collaborative": pytest.approx(0.65),
        "confidence": pytest.approx(0.55),
    }
    assert "finepseudo pseudo_label.strategy=confidence" in grouped.top1_markdown()

    with pytest.raises(ValueError, match=r"did you mean \['pseudo_label.strategy', "):
        compare_runs(client, "cmp-ablation", where={"pseudo_label.strategi": "confidence"})
    with pytest.raises(ValueError, match="none of them matching"):
        compare_runs(client, "cmp-ablation", where={"pseudo_label.strategy": "uncertainty"})


def test_pseudo_label_table_per_round_uses_latest_round_runs(client: MlflowClient) -> None:
    parents = [pipeline_run(client, "cmp-rounds", "finepseudo", 0.1, seed, 0.5) for seed in (0, 1)]
    start = client.get_run(parents[0]).info.start_time
    round_run(client, parents[0], 1, count=99, accuracy=0.1, start=start + 10)  # superseded below
    round_run(client, parents[0], 1, count=20, accuracy=0.9, start=start + 20)
    round_run(client, parents[0], 2, count=30, accuracy=0.8, start=start + 30)
    # seed 1's f failed its health check: its round fell back to g's confidence
    round_run(
        client, parents[1], 1, count=10, accuracy=0.7, start=start + 40, strategy="confidence"
    )

    comparison = compare_runs(client, "cmp-rounds")
    rounds = comparison.pseudo_labels.set_index("round")
    assert rounds.loc[1, "pseudo_labels_mean"] == pytest.approx(15)
    assert rounds.loc[1, "pseudo_label_accuracy_mean"] == pytest.approx(0.8)
    assert rounds.loc[1, "n_seeds"] == 2
    assert (rounds.loc[2, "pseudo_labels_mean"], rounds.loc[2, "n_seeds"]) == (pytest.approx(30), 1)
    assert rounds.loc[1, "strategies"] == "collaborative, confidence"
    assert rounds.loc[2, "strategies"] == "collaborative"
    assert (
        "| finepseudo, 10% labels | 15 (80.0) | 30 (80.0) |" in comparison.pseudo_label_markdown()
    )


def test_compare_command_prints_writes_and_logs(
    client: MlflowClient, tmp_path: Path, capsys
) -> None:
    for (method, fraction), values in TOP1.items():
        for seed, top1 in enumerate(values[:2]):
            pipeline_run(client, "cmp-command", method, fraction, seed, top1)
    out = tmp_path / "comparison"

    assert main(["compare", "--experiment", "cmp-command", "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "| method | 5% labels | 10% labels |" in printed
    accuracy = pd.read_csv(out / "label_splits.csv")
    assert {"method", "fraction", "top1_mean", "top1_std", "n_seeds"} <= set(accuracy.columns)
    assert len(accuracy) == 4 and set(accuracy["n_seeds"]) == {2}
    assert (out / "comparison.md").read_text().startswith("## Top-1 accuracy")
    assert (out / "top1_vs_fraction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    experiment = client.get_experiment_by_name("cmp-command").experiment_id
    (logged,) = client.search_runs([experiment], f"tags.`{COMPARISON_TAG}` = 'true'")
    assert logged.info.run_name == "comparison"
    names = {
        Path(item.path).name for item in client.list_artifacts(logged.info.run_id, "comparison")
    }
    assert names == {
        "label_splits.csv",
        "pseudo_labels.csv",
        "comparison.md",
        "top1_vs_fraction.png",
    }
    # The comparison run is no pipeline run: comparing again reads the same runs.
    assert compare_runs(client, "cmp-command").accuracy["n_seeds"].tolist() == [2, 2, 2, 2]
    assert PIPELINE_TAG not in logged.data.tags and CONFIG_TAG not in logged.data.tags


def test_bad_requests_get_clear_errors(client: MlflowClient, capsys) -> None:
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_where(["metric_learning.distance"])
    pipeline_run(client, "cmp-errors", "supervised", 0.1, 0, 0.4)
    with pytest.raises(ValueError, match=r"no MLflow experiment 'cmp-missing'.*'cmp-errors'"):
        compare_runs(client, "cmp-missing")
    assert main(["compare", "--experiment", "cmp-errors", "--by", "nope", "--out", "unused"]) == 2
    assert "--by 'nope': no pipeline run has this param" in capsys.readouterr().err

"""The label-split comparison, read from the MLflow runs the pipeline leaves.

Each pipeline run (method x label fraction x split seed) has a parent run carrying its params,
tags and test metrics, with a child run per stage. From these come the paper's two tables:
top-1 as "mean ± std" over split seeds, methods in rows and label fractions in columns (its
Table 1), and the pseudo-label count and accuracy per self-training round (its Table 6).
std is the population standard deviation over the seeds (0 for a single seed; n_seeds says how
many there were).
"""

import argparse
import difflib
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import yaml
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient

from pipeline.comparison_report import Comparison, log_comparison
from pipeline.config import RUN_PLACEMENT_KEYS, RunParams, load_params
from pipeline.tracking import CONFIG_TAG, PIPELINE_TAG, STAGE_TAG, tracking_uri

ROUND_STAGE = "pseudo_label@round_"
# Rows follow the order the paper's tables use: the baselines first.
METHODS = list(typing.get_args(RunParams.model_fields["method"].annotation))
HEADLINE = ["top1", "top5", "mean_class_accuracy"]
ROUND_METRICS = ["pseudo_labels", "pseudo_label_accuracy"]


@dataclass(frozen=True)
class PipelineRun:
    """One parent run: which pipeline run it is, its flattened params and headline metrics."""

    run_id: str
    method: str
    fraction: float
    seed: int
    config: str
    finished: bool
    start_time: int  # ms since the epoch
    params: Mapping[str, str]
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class RoundRun:
    """One pseudo_label@round_<r> child run and the statistics it logged."""

    parent_id: str
    round: int
    finished: bool
    start_time: int
    metrics: Mapping[str, float]
    strategy: str = ""  # the rule the round used (its `strategy` tag); "" before it was logged


# ============ reading MLflow ============


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the experiment `name`, with the names on offer when there is none."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(
            f"no MLflow experiment {name!r} in {client.tracking_uri}; experiments: {names}"
        )
    return experiment.experiment_id


def _finished(run: Run) -> bool:
    return run.info.status == RunStatus.to_string(RunStatus.FINISHED)


def read_pipeline_runs(client: MlflowClient, experiment: str) -> list[PipelineRun]:
    """Every parent run of the experiment (runs the pipeline tagged with its key)."""
    found = _search(client, experiment, f"tags.`{PIPELINE_TAG}` LIKE '%'")
    return [
        PipelineRun(
            run_id=run.info.run_id,
            method=run.data.tags["method"],
            fraction=float(run.data.tags["fraction"]),
            seed=int(run.data.tags["split_seed"]),
            config=run.data.tags[CONFIG_TAG],
            finished=_finished(run),
            start_time=run.info.start_time,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
        )
        for run in found
    ]


def read_round_runs(client: MlflowClient, experiment: str) -> list[RoundRun]:
    """Every pseudo_label@round_<r> child run of the experiment."""
    found = _search(client, experiment, f"tags.`{STAGE_TAG}` LIKE '{ROUND_STAGE}%'")
    return [
        RoundRun(
            parent_id=run.data.tags["mlflow.parentRunId"],
            round=int(run.data.tags[STAGE_TAG].removeprefix(ROUND_STAGE)),
            finished=_finished(run),
            start_time=run.info.start_time,
            metrics=dict(run.data.metrics),
            strategy=run.data.tags.get("strategy", ""),
        )
        for run in found
        if "mlflow.parentRunId" in run.data.tags
    ]


# ============ choosing runs ============


def parse_where(conditions: Sequence[str]) -> dict[str, str]:
    """["metric_learning.distance=softdtw", ...] -> {"metric_learning.distance": "softdtw"}."""
    parsed = {}
    for condition in conditions:
        key, sep, value = condition.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--where {condition!r}: expected KEY=VALUE, e.g. metric_learning.distance=softdtw"
            )
        parsed[key.strip()] = value.strip()
    return parsed


def _value(text: str) -> object:
    """A logged param or a typed condition as a value, so `false` matches a logged `False`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_keys(runs: Sequence[PipelineRun], keys: Sequence[str], option: str) -> None:
    known = set().union(*(run.params for run in runs)) if runs else set()
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"{option} {key!r}: no pipeline run has this param{hint}")


def select_runs(
    runs: Sequence[PipelineRun], where: Mapping[str, str] | None = None, config: str | None = None
) -> list[PipelineRun]:
    """The runs a comparison reads: finished, with a top-1, matching every `where` param (and
    the `config` digest when given); of several runs of one method, fraction, seed and setting,
    the latest."""
    where = dict(where or {})
    _check_keys(runs, list(where), "--where")
    latest: dict[tuple, PipelineRun] = {}
    for run in runs:
        if not run.finished or "top1" not in run.metrics:
            continue
        if config is not None and run.config != config:
            continue
        if any(_value(run.params.get(key, "")) != _value(wanted) for key, wanted in where.items()):
            continue
        key = (run.method, run.fraction, run.seed, run.config)
        if key not in latest or run.start_time > latest[key].start_time:
            latest[key] = run
    return sorted(latest.values(), key=lambda run: (run.method, run.fraction, run.seed))


def _groups(
    runs: Sequence[PipelineRun], by: Sequence[str]
) -> list[tuple[tuple, list[PipelineRun]]]:
    """Runs by (method, *by values, fraction) in table order, refusing a group that mixes
    settings."""
    _check_keys(runs, by, "--by")
    groups: dict[tuple, list[PipelineRun]] = {}
    for run in runs:
        groups.setdefault(
            (run.method, *(run.params.get(key, "") for key in by), run.fraction), []
        ).append(run)
    for key, members in groups.items():
        settings = {run.config: run.params for run in members}
        if len(settings) > 1:
            names = set().union(*settings.values()) - {"run.seed", *RUN_PLACEMENT_KEYS}
            differing = sorted(n for n in names if len({p.get(n) for p in settings.values()}) > 1)
            raise ValueError(
                f"the runs of {key} come from {len(settings)} settings "
                f"(--config {sorted(settings)}) that differ in {differing}; keep one with "
                "--where KEY=VALUE or --config DIGEST, or split them with --by KEY"
            )
    return sorted(groups.items(), key=lambda item: (METHODS.index(item[0][0]), item[0]))


# ============ the tables ============


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))


def accuracy_table(runs: Sequence[PipelineRun], by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per method (and `by` values) and label fraction: mean and std over split seeds
    of top-1, top-5 and mean class accuracy, with the seeds they cover."""
    rows = []
    for (method, *values, fraction), members in _groups(runs, by):
        row = {"method": method, **dict(zip(by, values, strict=True)), "fraction": fraction}
        for metric in HEADLINE:
            present = [run.metrics[metric] for run in members if metric in run.metrics]
            row[f"{metric}_mean"], row[f"{metric}_std"] = (
                _mean_std(present) if present else (math.nan, math.nan)
            )
        row["n_seeds"] = len(members)
        row["seeds"] = " ".join(str(run.seed) for run in sorted(members, key=lambda run: run.seed))
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=["method", *by, "fraction"]
        + [f"{metric}_{stat}" for metric in HEADLINE for stat in ("mean", "std")]
        + ["n_seeds", "seeds"],
    )


def pseudo_label_table(
    runs: Sequence[PipelineRun], rounds: Sequence[RoundRun], by: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per method (and `by` values), label fraction and round: the accepted
    pseudo-labels and their accuracy, each a mean over the split seeds that have the round,
    and the rules those rounds used (confidence where an unhealthy f was set aside)."""
    latest: dict[str, dict[int, RoundRun]] = {}  # parent run id -> round -> its child run
    for run in rounds:
        kept = latest.setdefault(run.parent_id, {}).get(run.round)
        if run.finished and (kept is None or run.start_time > kept.start_time):
            latest[run.parent_id][run.round] = run
    rows = []
    for (method, *values, fraction), members in _groups(runs, by):
        per_round: dict[int, list[RoundRun]] = {}
        for member in members:
            for number, run in latest.get(member.run_id, {}).items():
                per_round.setdefault(number, []).append(run)
        for number, found in sorted(per_round.items()):
            row = {"method": method, **dict(zip(by, values, strict=True)), "fraction": fraction}
            row["round"] = number
            for metric in ROUND_METRICS:
                present = [run.metrics[metric] for run in found if metric in run.metrics]
                row[f"{metric}_mean"] = sum(present) / len(present) if present else math.nan
            row["n_seeds"] = len(found)
            row["strategies"] = ", ".join(sorted({run.strategy for run in found} - {""}))
            rows.append(row)
    columns = [
        "method",
        *by,
        "fraction",
        "round",
        *(f"{m}_mean" for m in ROUND_METRICS),
        "n_seeds",
        "strategies",
    ]
    return pd.DataFrame(rows, columns=columns)


# ============ the command ============


def compare_runs(
    client: MlflowClient,
    experiment: str,
    where: Mapping[str, str] | None = None,
    by: Sequence[str] = (),
    config: str | None = None,
) -> Comparison:
    """Both tables for the experiment named `experiment` (see `select_runs` for the choice)."""
    experiment_key = experiment_id(client, experiment)
    found = read_pipeline_runs(client, experiment_key)
    runs = select_runs(found, where, config)
    if not runs:
        complete = sum(run.finished and "top1" in run.metrics for run in found)
        raise ValueError(
            f"experiment {experiment!r} has {len(found)} pipeline run(s), {complete} finished "
            f"with a top-1, none of them matching --where {dict(where or {})} --config {config}"
        )
    rounds = read_round_runs(client, experiment_key)
    return Comparison(accuracy_table(runs, by), pseudo_label_table(runs, rounds, by), tuple(by))


def run_compare(args: argparse.Namespace) -> int:
    """`finepseudo compare`: print the tables, write them to args.out and log them to MLflow."""
    experiment = args.experiment or load_params(args.params).dataset.name
    client = MlflowClient(tracking_uri())
    comparison = compare_runs(client, experiment, parse_where(args.where), args.by, args.config)
    print(comparison.markdown())
    files = comparison.save(args.out)
    print(f"wrote {', '.join(str(path) for path in files)}")
    if args.log:
        description = {
            "experiment": experiment,
            "where": " ".join(args.where),
            "by": " ".join(args.by),
            "config": args.config or "",
        }
        run_id = log_comparison(client, experiment_id(client, experiment), files, description)
        print(f"logged to MLflow run {run_id} (comparison) in experiment {experiment!r}")
    return 0

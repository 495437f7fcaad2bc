"""The Prefect flows on a tiny project, against a real Prefect server, real DVC and a real MLflow
store: the pipeline flow (first run, then a run DVC mostly skips), the label-split sweep of DVC
experiments with its comparison, `finepseudo compare` over those runs, and `finepseudo ui`."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentTaskRunId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTaskRunId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import LogSort
from prefect.logging.handlers import APILogHandler
from prefect.states import State
from tiny_project import REPO, free_port, make_project, run

from flows.pipeline_flow import finepseudo_pipeline
from flows.stage_graph import read_stage_graph
from flows.sweep_flow import label_split_sweep, threads_per_experiment
from pipeline.comparison_report import COMPARISON_TAG
from pipeline.tracking import PIPELINE_TAG, STAGE_TAG

# One self-training round, one epoch per step, and a threshold that accepts pseudo-labels, so
# every stage and every table has real content at the least cost; two label fractions to sweep.
OVERRIDES = {
    "splits": {"fractions": [0.5, 0.34], "seeds": [0]},
    "metric_learning": {"epochs": 1},
    "finetune": {"epochs": 1},
    "pseudo_label": {"threshold": 0.0, "collaborative_threshold": 0.0},
    "self_training": {"rounds": {"round_1": "round_0"}},
}
EXPERIMENT = re.compile(r"(supervised|finepseudo)-f[0-9.]+-s0-[0-9]{4}-[0-9]{6}")
SYNTHESIZE = "synthetic/dvc.yaml:synthesize"  # its own pipeline file (real datasets skip it)
SHARED = [SYNTHESIZE, "extract_frames", "make_splits", "pretrain_gitdl", "pretrain_action"]

# The first test builds and runs the tiny pipeline; the sweep runs four experiments after it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("flows") / "project", OVERRIDES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("OMP_NUM_THREADS", "1")
        yield root


@pytest.fixture(scope="module")
def first_run(project: Path) -> State:
    return finepseudo_pipeline(project=str(project), retries=0, return_state=True)


def task_runs(flow_state: State) -> dict[str, TaskRun]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        found = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])
            )
        )
    return {run.name: run for run in found}


def task_log(task_run: TaskRun) -> list[str]:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run.id]))
        )
    return [log.message for log in logs]


def last_flow_log(flow_state: State, lines: int = 50) -> list[str]:
    """The last `lines` log lines of a flow run (its tasks' included), oldest first."""
    APILogHandler().flush()
    flow_run_id = flow_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
            limit=lines,
            sort=LogSort.TIMESTAMP_DESC,
        )
    return [log.message for log in reversed(logs)]


def mlflow_runs(project: Path, filter_string: str) -> list:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    return client.search_runs([experiment], filter_string)


def test_queued_experiments_share_the_cores_unless_run_threads_is_set() -> None:
    cores = os.cpu_count() or 1
    assert threads_per_experiment(0, 1) == cores
    assert threads_per_experiment(0, 2) == max(1, cores // 2)
    assert threads_per_experiment(0, 4 * cores) == 1
    assert threads_per_experiment(3, 2) == 3


def test_flows_switch_off_the_telemetry_of_the_prefect_server_they_start() -> None:
    """A sweep run without PREFECT_API_URL starts a temporary Prefect server with this
    process's settings, and its analytics service does not read DO_NOT_TRACK."""
    shell = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")
    }
    code = (
        "import flows.sweep_flow\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().server.analytics_enabled)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=shell, cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_stage_graph_comes_from_dvc(project: Path) -> None:
    graph = read_stage_graph(project)
    listed = run(project, "dvc", "stage", "list", "--name-only").stdout.split()
    assert graph.names == [SYNTHESIZE, *listed]
    assert [stage.name for stage in graph.shared()] == SHARED
    assert [stage.name for stage in graph.with_upstream(["finetune"])] == [
        SYNTHESIZE,
        "extract_frames",
        "make_splits",
        "pretrain_action",
        "finetune",
    ]
    with pytest.raises(
        ValueError, match=r"unknown stage\(s\) \['train'\]; dvc.yaml has \['synthetic/dvc.yaml:"
    ):
        graph.with_upstream(["train"])


def test_pipeline_flow_runs_every_dvc_stage_as_a_task(project: Path, first_run: State) -> None:
    assert first_run.is_completed(), first_run.message
    stages = [SYNTHESIZE, *run(project, "dvc", "stage", "list", "--name-only").stdout.split()]
    assert "pseudo_label@round_1" in stages and "retrain@round_1" in stages
    runs = task_runs(first_run)
    assert sorted(runs) == sorted(stages)
    assert {(r.state_type.value, r.state_name) for r in runs.values()} == {
        ("COMPLETED", "Completed")
    }
    # The graph reaches the UI: evaluate waited for the last round's retraining.
    waited = {inp.id for inp in runs["evaluate"].task_inputs["wait_for"]}
    assert runs["retrain@round_1"].id in waited and runs[SYNTHESIZE].id not in waited
    assert runs["metric_learning"].start_time >= runs["pretrain_gitdl"].end_time
    assert f"Running stage '{SYNTHESIZE}':" in task_log(runs[SYNTHESIZE])
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(first_run.state_details.flow_run_id)
    assert flow_run.name == "finepseudo 50% labels seed 0"
    assert first_run.result() == dict.fromkeys(stages, "ran")
    assert "Data and pipelines are up to date." in run(project, "dvc", "status").stdout
    (parent,) = mlflow_runs(project, f"tags.`{PIPELINE_TAG}` LIKE 'finepseudo-f0.5-s0-%'")
    assert "top1" in parent.data.metrics


def test_second_run_shows_skipped_and_cached_stages(project: Path, first_run: State) -> None:
    assert first_run.is_completed()
    action_model = project / "models" / "round_0" / "action.pt"
    action_model.unlink()  # DVC restores it from its run-cache rather than fine-tuning again

    state = finepseudo_pipeline(project=str(project), retries=0, return_state=True)

    assert state.is_completed()
    runs = task_runs(state)
    names = {name: (r.state_type.value, r.state_name) for name, r in runs.items()}
    assert names.pop("finetune") == ("COMPLETED", "Cached")
    assert set(names.values()) == {("COMPLETED", "Skipped")}
    assert action_model.is_file()
    assert state.result()["finetune"] == "cached"
    assert len(mlflow_runs(project, f"tags.`{STAGE_TAG}` = 'finetune'")) == 1  # it never reran


def test_failed_stage_is_retried_and_stops_what_depends_on_it(
    tmp_path: Path, prefect_api: str
) -> None:
    stages = {
        "flaky": {
            "cmd": "test -f tried || { touch tried; exit 3; }; echo ok > flaky.txt",
            "outs": ["flaky.txt"],
        },
        "broken": {"cmd": "echo 'no such input' >&2; exit 4", "outs": ["broken.txt"]},
        "after": {"cmd": "cp broken.txt after.txt", "deps": ["broken.txt"], "outs": ["after.txt"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "params.yaml").write_text("run: {method: supervised}\n")
    (tmp_path / ".gitignore").write_text("/tried\n")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"]):
        run(tmp_path, *command)
    run(
        tmp_path,
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.org",
        "commit",
        "-qm",
        "flaky",
    )

    state = finepseudo_pipeline(
        project=str(tmp_path), retries=1, retry_delay_seconds=0, return_state=True
    )

    assert state.is_failed()
    assert (
        "'broken'" in state.message and "'after'" in state.message and "flaky" not in state.message
    )
    runs = task_runs(state)
    assert (runs["flaky"].state_name, runs["flaky"].run_count) == ("Completed", 2)
    assert (runs["broken"].state_type.value, runs["broken"].run_count) == ("FAILED", 2)
    assert "exited with 4" in runs["broken"].state.message and "no such input" in task_log(
        runs["broken"]
    )
    assert runs["after"].state_type.value != "COMPLETED" and not (tmp_path / "after.txt").exists()


def test_sweep_runs_dvc_experiments_and_compare_reads_them(project: Path, first_run: State) -> None:
    assert first_run.is_completed()
    state = label_split_sweep(
        fractions=[0.5, 0.34],
        seeds=[0],
        methods=["supervised", "finepseudo"],
        jobs=2,
        project=str(project),
        out="comparison",
        poll_seconds=2.0,
        return_state=True,
    )

    assert state.is_completed(), state.message
    runs = task_runs(state)
    experiments = {name: r for name, r in runs.items() if EXPERIMENT.fullmatch(name)}
    assert sorted(name.rsplit("-", 2)[0] for name in experiments) == [
        "finepseudo-f0.34-s0",
        "finepseudo-f0.5-s0",
        "supervised-f0.34-s0",
        "supervised-f0.5-s0",
    ]
    assert {r.state_type.value for r in experiments.values()} == {"COMPLETED"}
    listed = run(project, "dvc", "exp", "list", "--name-only").stdout.split()
    assert set(experiments) <= set(listed)
    # The shared stages ran in the workspace as a subflow, skipped there, and in no experiment.
    with get_client(sync_client=True) as client:
        (subflow,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[r.id for r in runs.values()])
            )
        )
        shared = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[subflow.id]))
        )
    assert sorted(r.name for r in shared) == sorted(SHARED)
    assert {r.state_name for r in shared} == {"Skipped"}
    for stage in SHARED:  # MLflow names a stage without its dvc.yaml file
        name = stage.rsplit(":", 1)[-1]
        assert len(mlflow_runs(project, f"tags.`{STAGE_TAG}` = '{name}'")) == 1
    # The sweep counts what DVC reused: the shared stages (skipped in the workspace, then checked
    # out by every experiment) and, per experiment, each of its 10 stages ran or was reused.
    flow_log = last_flow_log(state)
    (summary,) = [line for line in flow_log if line.startswith("stage runs: ")]
    assert any(
        re.fullmatch(r"the sweep of 4 combinations took \d+\.\d minutes", line) for line in flow_log
    )
    ran, reused, unchanged = map(
        int,
        re.match(
            r"stage runs: (\d+) ran, (\d+) reused \(\d+ .*, (\d+) unchanged", summary
        ).groups(),
    )
    assert ran + reused == 5 + 4 * 10 and unchanged >= 5 + 4 * 5, summary

    # Every combination's parent run, as MLflow holds it.
    parents = {
        (p.data.tags["method"], float(p.data.tags["fraction"])): p
        for p in mlflow_runs(project, f"tags.`{PIPELINE_TAG}` LIKE '%'")
    }
    assert len(parents) == 4 and all("top1" in p.data.metrics for p in parents.values())
    swept = pd.read_csv(project / "comparison" / "label_splits.csv")

    result = run(project, sys.executable, "-m", "pipeline.cli", "compare", "--out", "table")

    for accuracy in (swept, pd.read_csv(project / "table" / "label_splits.csv")):
        assert len(accuracy) == 4
        for row in accuracy.itertuples():
            parent = parents[(row.method, row.fraction)]
            assert row.top1_mean == pytest.approx(parent.data.metrics["top1"])
            assert (row.top1_std, row.n_seeds) == (0.0, 1)
    rounds = pd.read_csv(project / "table" / "pseudo_labels.csv")
    assert len(rounds) == 4 and set(rounds["round"]) == {1}
    for row in rounds.itertuples():
        parent_id = parents[(row.method, row.fraction)].info.run_id
        (child,) = [
            c
            for c in mlflow_runs(project, f"tags.`{STAGE_TAG}` = 'pseudo_label@round_1'")
            if c.data.tags["mlflow.parentRunId"] == parent_id
        ]
        assert row.pseudo_labels_mean == child.data.metrics["pseudo_labels"]
    assert rounds.loc[rounds["method"] == "supervised", "pseudo_labels_mean"].eq(0).all()
    assert rounds.loc[rounds["method"] == "finepseudo", "pseudo_labels_mean"].gt(0).all()
    assert "| method | 34% labels | 50% labels |" in result.stdout
    assert len(mlflow_runs(project, f"tags.`{COMPARISON_TAG}` = 'true'")) == 2


def test_ui_serves_prefect_and_mlflow_until_interrupted(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(store).create_experiment("ui-check")
    prefect_port, mlflow_port = free_port(), free_port()
    env = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "MLFLOW_TRACKING_URI": store,
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "ui",
        "--prefect-port",
        str(prefect_port),
        "--mlflow-port",
        str(mlflow_port),
        "--timeout",
        "240",
    ]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        printed = []
        while not printed or not printed[-1].startswith("Ctrl-C stops both"):
            line = server.stdout.readline()
            assert line, f"finepseudo ui ended early with {server.wait()}: {printed}"
            printed.append(line)
        assert printed[0].startswith(f"Prefect UI: http://127.0.0.1:{prefect_port} ")
        assert printed[1].startswith(f"MLflow UI:  http://127.0.0.1:{mlflow_port} ")
        with urllib.request.urlopen(
            f"http://127.0.0.1:{prefect_port}/api/health", timeout=10
        ) as answer:
            assert answer.read() == b"true"
        url = f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-check"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert json.load(answer)["experiment"]["name"] == "ui-check"
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=90)  # each server has 15 s before it is killed
        assert server.returncode == 0 and "stopping the Prefect and MLflow servers" in rest
    finally:
        if server.poll() is None:
            server.terminate()  # lets it stop both servers; killing it would leave them running
            server.wait(timeout=60)
    for port in (prefect_port, mlflow_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0

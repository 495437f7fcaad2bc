"""Stopping `python -m flows.pipeline_flow` with SIGTERM or SIGINT (Ctrl-C) mid-stage: the DVC
command and the stage it runs stop with it, the Prefect flow run ends Crashed (not Running),
and the stage's MLflow run, with its parent, ends KILLED."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from tiny_project import REPO, environment, make_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# pretrain_gitdl runs long enough to be stopped part-way
OVERRIDES = {"gitdl": {"epochs": 200}, "dataset": {"name": "interrupted"}}
STAGE = "pretrain_gitdl"


def _running_stage(client: MlflowClient, process: subprocess.Popen, output: Path) -> None:
    """Wait until the stage's MLflow run is RUNNING (the stage is training)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()[-4000:]
        experiment = client.get_experiment_by_name("interrupted")
        if experiment and client.search_runs(
            [experiment.experiment_id],
            f"tags.stage = '{STAGE}' and attributes.status = 'RUNNING'",
        ):
            return
        time.sleep(1.0)
    raise AssertionError(f"{STAGE} never started:\n{output.read_text()[-4000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_pipeline_flow_stops_its_stage_and_ends_crashed_and_killed(
    tmp_path, prefect_api, signum
):
    project = make_project(tmp_path / "project", OVERRIDES)
    env = environment(project) | {
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(REPO),
    }
    output = tmp_path / "flow.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline_flow", "--project", str(project)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    try:
        _running_stage(client, process, output)
        children = psutil.Process(process.pid).children(recursive=True)
        commands = [" ".join(child.cmdline()) for child in children]
        assert any("dvc repro" in c for c in commands) and any(STAGE in c for c in commands)
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    log = output.read_text()
    assert process.returncode in (128 + signum, -signum), log[-4000:]
    # the DVC child and its stage stopped with the flow, not left behind
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [" ".join(p.cmdline()) for p in alive]

    with get_client(sync_client=True) as prefect:
        flow_runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=["finepseudo 50% labels seed 0"])
            )
        )
    flow_run = max(flow_runs, key=lambda run: run.created)  # this test's (the server is shared)
    assert flow_run.state.type.value in ("CRASHED", "CANCELLED"), flow_run.state

    experiment = client.get_experiment_by_name("interrupted").experiment_id
    (stage_run,) = client.search_runs([experiment], f"tags.stage = '{STAGE}'")
    assert stage_run.info.status == "KILLED"
    parent = client.get_run(stage_run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"
    assert os.path.exists(project / "dvc.lock")  # the stages before it were recorded

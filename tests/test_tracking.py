"""MLflow parent runs stay true: a complete pipeline run stays FINISHED whatever a later failed or
interrupted attempt of one of its stages does, and links the child run of every stage."""

import signal
import subprocess
import sys
import time

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from project_imports import REPO

from pipeline.config import Params, parse_params
from pipeline.tracking import (
    COMPLETE_TAG,
    StageInterrupted,
    log_parent_metrics,
    parent_run_id,
    stage_link_tag,
    stage_run,
)

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def params_named(name: str) -> Params:
    return parse_params({**RAW, "dataset": {**RAW["dataset"], "name": name}})


@pytest.fixture
def client(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    return MlflowClient(tracking_uri)


def status(client: MlflowClient, run_id: str) -> str:
    return client.get_run(run_id).info.status


def children(client: MlflowClient, parent_id: str, stage: str) -> list:
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs(
        [experiment],
        f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.stage = '{stage}'",
        order_by=["attributes.start_time ASC"],
    )


def test_a_complete_parent_stays_finished_after_failed_and_interrupted_reruns(client):
    params = params_named("tracking-complete")
    with stage_run("finetune", params):
        mlflow.log_metric("loss", 1.0)
    with stage_run("evaluate", params):
        log_parent_metrics(params, {"top1": 0.579})
    parent_id = parent_run_id(client, params)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[COMPLETE_TAG] == "true"
    (first_finetune,) = children(client, parent_id, "finetune")
    assert parent.data.tags[stage_link_tag("finetune")] == first_finetune.info.run_id

    with pytest.raises(StageInterrupted), stage_run("finetune", params):
        raise StageInterrupted(128 + signal.SIGTERM)
    with pytest.raises(RuntimeError), stage_run("finetune", params):
        raise RuntimeError("out of memory")

    attempts = [run.info.status for run in children(client, parent_id, "finetune")]
    assert attempts == ["FINISHED", "KILLED", "FAILED"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["top1"] == pytest.approx(0.579)
    # the link still names the run whose result the parent holds
    assert parent.data.tags[stage_link_tag("finetune")] == first_finetune.info.run_id


def test_an_incomplete_parent_reports_its_failed_or_killed_stage(client):
    params = params_named("tracking-incomplete")
    with pytest.raises(RuntimeError), stage_run("finetune", params):
        raise RuntimeError("broken")
    parent_id = parent_run_id(client, params)
    assert status(client, parent_id) == "FAILED"
    with pytest.raises(KeyboardInterrupt), stage_run("finetune", params):
        raise KeyboardInterrupt
    assert status(client, parent_id) == "KILLED"
    with stage_run("pseudo_label@round_1", params) as labelling:
        pass
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and COMPLETE_TAG not in parent.data.tags
    assert parent.data.tags[stage_link_tag("pseudo_label@round_1")] == labelling.info.run_id


def test_sigterm_stops_a_stage_process_with_its_run_killed(
    client, tracking_uri, stage_env, tmp_path
):
    # a real stage process: synthesize renders many videos, long enough to be stopped mid-way
    raw = {
        **RAW,
        "dataset": {**RAW["dataset"], "name": "tracking-sigterm"},
        "synthesize": {**RAW["synthesize"], "classes": 8, "workers": 1},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.synthesize", "--out", str(tmp_path / "data")],
        cwd=tmp_path,
        env=stage_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    params = parse_params(raw)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until its child run exists: the stage is working
        experiment = client.get_experiment_by_name("tracking-sigterm")
        if experiment and client.search_runs(
            [experiment.experiment_id], "tags.stage = 'synthesize'"
        ):
            break
        assert process.poll() is None, process.stdout.read().decode()
        time.sleep(0.5)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0].decode()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    parent_id = parent_run_id(client, params)
    (run,) = children(client, parent_id, "synthesize")
    assert run.info.status == "KILLED"
    assert status(client, parent_id) == "KILLED"

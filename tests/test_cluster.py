"""A sweep across machines, all real and on 127.0.0.1: a Prefect server with a process work pool,
two workers (two "machines", each in its own clone with its own DVC cache), an MLflow tracking
server with proxied artifacts, a DVC remote (a folder) and a bare git remote. One worker is
killed mid-run; its job completes on the other. And one training run on two "nodes" under
torchrun with static rendezvous matches one process.

Run with `pytest -m cluster`; `make test` runs it with the rest."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import StateType
from prefect.workers.process import ProcessWorker
from tiny_project import REPO, environment, free_port, make_project, run

from flows.pool_sweep import DEPLOYMENT
from flows.sweep_job import MACHINE_TAG
from pipeline.tracking import PIPELINE_TAG, STAGE_TAG

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

POOL = "cluster"
MACHINES = ("machine-a", "machine-b")
# One round, one epoch per training stage, two label fractions: four combinations.
OVERRIDES = {
    "splits": {"fractions": [0.5, 0.34], "seeds": [0]},
    "metric_learning": {"epochs": 1},
    "finetune": {"epochs": 1},
    "pseudo_label": {"threshold": 0.0},
    "self_training": {"rounds": {"round_1": "round_0"}},
}
SHARED = ["synthesize", "extract_frames", "make_splits", "pretrain_gitdl", "pretrain_action"]
WORKER_HEARTBEAT_SECONDS = 5


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: server exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """End a process started in a session of its own, with everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _kill_machine(process: subprocess.Popen) -> None:
    """A machine lost at once: its worker and every process below it (the flow run leads a
    session of its own, with DVC and the stage in it) get SIGKILL."""
    tree = psutil.Process(process.pid)
    members = [tree, *tree.children(recursive=True)]
    for member in members:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(members, timeout=30)


class Cluster:
    """Where everything lives, and the processes to stop."""

    def __init__(self, root: Path, prefect_api: str) -> None:
        self.root = root
        self.prefect_api = prefect_api
        self.project = root / "project"
        self.git_remote = root / "remote.git"
        self.dvc_remote = root / "dvc-remote"
        self.mlflow_url = ""
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | {
            "PREFECT_API_URL": self.prefect_api,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "OMP_NUM_THREADS": "1",
            "PREFECT_HOME": str(self.root / "prefect-home"),
            **extra,
        }

    def start(self, command: list[str], cwd: Path, log: Path, env: dict) -> subprocess.Popen:
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), prefect_api)
    try:
        # ============ the MLflow tracking server, proxying artifacts ============
        port = free_port()
        cluster.mlflow_url = f"http://127.0.0.1:{port}"
        mlflow_log = cluster.root / "mlflow.log"
        server = cluster.start(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{cluster.root / 'mlflow-server.db'}",
                "--artifacts-destination", str(cluster.root / "mlflow-artifacts"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            # No job runner: its consumer processes are for GenAI jobs the pipeline has none of.
            cluster.root, mlflow_log, cluster.env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        )  # fmt: skip
        # ============ the project, its git remote and its DVC remote ============
        project = make_project(cluster.project, OVERRIDES)
        shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("__py*"))
        run(project, "dvc", "remote", "add", "-d", "shared", str(cluster.dvc_remote))
        run(project, "git", "add", "-A")
        run(project, "git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "remote")
        run(cluster.root, "git", "clone", "-q", "--bare", str(project), str(cluster.git_remote))
        run(project, "git", "remote", "add", "origin", str(cluster.git_remote))
        run(project, "git", "fetch", "-q", "origin")
        _wait_for(f"{cluster.mlflow_url}/health", server, mlflow_log)
        # ============ the pool and a worker per machine, each in its own clone ============
        # As `prefect work-pool create cluster --type process` does, without its look-up of
        # worker types on the network.
        with get_client(sync_client=True) as client:
            client.create_work_pool(
                WorkPoolCreate(
                    name=POOL,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        for machine in MACHINES:
            clone = cluster.root / machine
            run(cluster.root, "git", "clone", "-q", str(cluster.git_remote), str(clone))
            worker_env = cluster.env(
                PYTHONPATH=str(clone),
                FINEPSEUDO_MACHINE=machine,
                PREFECT_HOME=str(cluster.root / f"{machine}-prefect"),
                PREFECT_WORKER_HEARTBEAT_SECONDS=str(WORKER_HEARTBEAT_SECONDS),
                PREFECT_WORKER_QUERY_SECONDS="2",
                GIT_AUTHOR_NAME=machine,
                GIT_AUTHOR_EMAIL=f"{machine}@example.org",
                GIT_COMMITTER_NAME=machine,
                GIT_COMMITTER_EMAIL=f"{machine}@example.org",
            )
            cluster.workers[machine] = cluster.start(
                [
                    sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                    "--type", "process", "--limit", "1", "--name", machine,
                ],
                clone, cluster.root / f"{machine}.log", worker_env,
            )  # fmt: skip
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            _stop(process)


def _flow_runs() -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT]))
        )


def _machine(flow_run) -> str | None:
    return flow_run.labels.get("prefect.worker.name")


@pytest.fixture(scope="module")
def sweep(cluster: Cluster) -> tuple[subprocess.CompletedProcess, str]:
    """The sweep, as the command line runs it; one machine is lost while it runs a combination
    (after both machines finished a job). Returns the driver's output and the lost machine."""
    log = cluster.root / "sweep.log"
    driver = cluster.start(
        [
            sys.executable, "-m", "flows.sweep_flow", "--backend", "pool", "--pool", POOL,
            "--project", str(cluster.project), "--fractions", "0.5", "0.34", "--seeds", "0",
            "--methods", "supervised", "finepseudo", "--attempts", "2", "--out", "comparison",
        ],
        cluster.project, log, cluster.env(PYTHONPATH=str(cluster.project)),
    )  # fmt: skip
    lost = None
    deadline = time.monotonic() + 800
    while driver.poll() is None and time.monotonic() < deadline:
        time.sleep(2)
        if lost:
            continue
        runs = _flow_runs()
        finished = {_machine(r) for r in runs if r.state_type == StateType.COMPLETED}
        for flow_run in runs:
            running_combination = (
                flow_run.state_type == StateType.RUNNING
                and flow_run.parameters.get("overrides") is not None
                and flow_run.start_time is not None
                and (datetime.now(UTC) - flow_run.start_time).total_seconds() < 15  # just begun
            )
            if running_combination and finished >= set(MACHINES):
                time.sleep(8)  # into its stages
                # The run seen RUNNING may have been about to finish: kill its machine only if it
                # still runs it, or the machine dies idle and nothing is left to resubmit.
                with get_client(sync_client=True) as client:
                    still = client.read_flow_run(flow_run.id).state_type == StateType.RUNNING
                if still:
                    lost = _machine(flow_run)
                    _kill_machine(cluster.workers[lost])
                break
    if driver.poll() is None:
        _stop(driver)
    output = log.read_text()
    assert driver.returncode == 0, output[-6000:]
    assert lost, f"no machine ran a combination after both finished a job:\n{output[-6000:]}"
    return output, lost


def _mlflow_runs(cluster: Cluster, filter_string: str) -> list:
    client = MlflowClient(cluster.mlflow_url)
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    return client.search_runs([experiment], filter_string, max_results=1000)


def test_sweep_runs_on_both_machines_and_resubmits_the_lost_run(
    cluster: Cluster, sweep: tuple[str, str]
) -> None:
    output, lost = sweep
    survivor = next(machine for machine in MACHINES if machine != lost)
    runs = _flow_runs()
    crashed = [r for r in runs if r.state_type == StateType.CRASHED]
    assert len(crashed) == 1 and _machine(crashed[0]) == lost
    job = crashed[0].parameters["name"]
    (rerun,) = [r for r in runs if r.parameters["name"] == f"{job}-r2"]
    assert rerun.state_type == StateType.COMPLETED and _machine(rerun) == survivor
    assert f"{job}: done on {lost} then {survivor}" in output
    completed = [r for r in runs if r.state_type == StateType.COMPLETED]
    assert len(completed) == 5  # the shared stages and four combinations
    assert {_machine(r) for r in completed} == set(MACHINES)

    # Both machines logged stages to the tracking server, each run tagged with its machine.
    stage_runs = _mlflow_runs(cluster, f"tags.`{STAGE_TAG}` LIKE '%'")
    assert {r.data.tags.get(MACHINE_TAG) for r in stage_runs} == set(MACHINES)
    # The shared stages ran once; the stages reading no run.method once per label fraction.
    for stage in SHARED:
        assert len(_mlflow_runs(cluster, f"tags.`{STAGE_TAG}` = '{stage}'")) == 1, stage
    for stage in ("metric_learning", "finetune"):
        assert len(_mlflow_runs(cluster, f"tags.`{STAGE_TAG}` = '{stage}'")) == 2, stage
    counted = re.search(r"stage runs: (\d+) ran, (\d+) reused \((\d+) restored", output)
    assert counted, output[-3000:]
    ran, reused, restored = map(int, counted.groups())
    assert restored >= 4  # metric_learning and finetune of both finepseudo combinations
    assert ran + reused == 5 + 4 * 10  # the shared job's 5 stages and 10 per combination

    # Every combination has a finished parent run with a top-1 on the server.
    parents = _mlflow_runs(cluster, f"tags.`{PIPELINE_TAG}` LIKE '%'")
    done = {
        (p.data.tags["method"], float(p.data.tags["fraction"]))
        for p in parents
        if p.info.status == "FINISHED" and "top1" in p.data.metrics
    }
    assert done == {(m, f) for m in ("supervised", "finepseudo") for f in (0.5, 0.34)}

    # The experiments reached the git remote, the outputs and the run-cache the DVC remote.
    refs = run(cluster.project, "git", "ls-remote", str(cluster.git_remote)).stdout
    assert len(re.findall(r"refs/exps/", refs)) == 4
    assert (cluster.dvc_remote / "runs").is_dir()


def test_compare_reads_the_tracking_server(cluster: Cluster, sweep: tuple[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "compare", "--out", "table", "--no-log"],
        cwd=cluster.project,
        env=cluster.env(PYTHONPATH=str(cluster.project)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(cluster.project / "table" / "label_splits.csv")
    assert sorted(zip(table["method"], table["fraction"], strict=True)) == [
        ("finepseudo", 0.34),
        ("finepseudo", 0.5),
        ("supervised", 0.34),
        ("supervised", 0.5),
    ]
    assert "| method | 34% labels | 50% labels |" in result.stdout


def _finetune_on_two_nodes(nodes: tuple[Path, Path], out: str) -> None:
    """The finetune stage as 2 nodes x 1 process: one torchrun launcher per node (each in its
    own project folder, as on two machines), node 0 the static rendezvous on 127.0.0.1."""
    port = free_port()
    command = [
        "-m", "stages.finetune", "--frames", "data/frames",
        "--split", "data/splits/frac0.5_seed0.parquet",
        "--pretrained", "models/pretrained/action.pt",
        "--out", out, "--checkpoint", "checkpoints/two_nodes.pt",
    ]  # fmt: skip

    def torchrun(rank: int) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node",
            "1", "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
        ]  # fmt: skip

    launchers = [
        subprocess.Popen(
            [*torchrun(rank), *command], cwd=node, env=environment(node) | {"PYTHONPATH": str(node)}
        )
        for rank, node in enumerate(nodes)
    ]
    assert [launcher.wait(timeout=600) for launcher in launchers] == [0, 0]


def test_a_training_stage_on_two_nodes_matches_one_process(tmp_path: Path) -> None:
    # No dropout: its masks are drawn per process, so 2 processes cannot replay 1 process's.
    overrides = {
        "synthesize": {"train_per_class": 16},
        "action_encoder": {"dropout": 0.0},
        "finetune": {"epochs": 6, "batch_size": 16},
    }
    node0 = make_project(tmp_path / "node0", overrides)
    run(node0, "dvc", "repro", "finetune")  # inputs, then the stage in one process
    # Node 1 is another machine: the stage's inputs (as `dvc pull` brings them), no outputs,
    # no MLflow store.
    node1 = tmp_path / "node1"
    shutil.copytree(
        node0, node1, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts", "health", "round_0")
    )
    _finetune_on_two_nodes((node0, node1), "models/two_nodes.pt")

    assert not (node1 / "models" / "two_nodes.pt").exists(), "rank 1 wrote the stage's output"
    assert not (node1 / "mlflow.db").exists(), "rank 1 opened an MLflow store"
    assert not (node1 / "health").exists(), "rank 1 wrote a health report"
    client = MlflowClient(f"sqlite:///{node0 / 'mlflow.db'}")
    finetunes = client.search_runs(
        [client.get_experiment_by_name("synthetic").experiment_id],
        filter_string=f"tags.{STAGE_TAG} = 'finetune'",
        order_by=["attribute.start_time ASC"],
    )
    assert [run.info.status for run in finetunes] == ["FINISHED", "FINISHED"]
    single, nodes = (
        [metric.value for metric in client.get_metric_history(run.info.run_id, "loss")]
        for run in finetunes
    )
    # The nodes see the same clips in the same global batches from the same weights, but CPUs
    # have no synchronised BatchNorm: each process normalises its half batch, so the losses
    # match closely, not exactly. Measured: 0.024 apart at most over 6 epochs; one process
    # with another finetune.seed: 0.08.
    assert len(single) == len(nodes) == 6
    gaps = [abs(a - b) for a, b in zip(single, nodes, strict=True)]
    assert max(gaps) < 0.04, f"training loss per epoch: one process {single}, two nodes {nodes}"
    assert (node0 / "models" / "two_nodes.pt").is_file()


def test_ui_with_a_tracking_server_starts_prefect_alone(cluster: Cluster, tmp_path: Path) -> None:
    prefect_port = free_port()
    env = cluster.env(PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPATH=str(REPO))
    command = [
        sys.executable, "-m", "pipeline.cli", "ui", "--prefect-port", str(prefect_port),
        "--timeout", "240",
    ]  # fmt: skip
    ui = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        printed = []
        while not printed or not printed[-1].startswith("Ctrl-C stops"):
            line = ui.stdout.readline()
            assert line, f"finepseudo ui ended early with {ui.wait()}: {printed}"
            printed.append(line)
        assert printed[0].startswith(f"Prefect UI: http://127.0.0.1:{prefect_port} ")
        assert printed[1].startswith(f"MLflow UI:  {cluster.mlflow_url} ")
        assert printed[2].startswith("Ctrl-C stops the Prefect server")
        ui.send_signal(signal.SIGINT)
        ui.communicate(timeout=90)
        assert ui.returncode == 0
    finally:
        if ui.poll() is None:
            ui.terminate()
            ui.wait(timeout=60)
    with urllib.request.urlopen(f"{cluster.mlflow_url}/health", timeout=10) as answer:
        assert answer.status == 200  # the tracking server is not the UI's to stop


def _stage_processes(worker: subprocess.Popen) -> list[str]:
    """Command lines of the DVC and stage processes below a worker."""
    found = []
    for process in psutil.Process(worker.pid).children(recursive=True):
        try:
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "stages." in command or " dvc " in f" {command} " or "-m dvc" in command:
            found.append(command)
    return found


def test_stopping_the_sweep_stops_the_stages_on_the_workers(
    cluster: Cluster, sweep: tuple[str, str]
) -> None:
    _, lost = sweep
    (machine,) = [m for m in MACHINES if m != lost]
    worker = cluster.workers[machine]
    # A setting no run has used yet, so the job has a stage to run when the sweep stops.
    params = yaml.safe_load((cluster.project / "params.yaml").read_text())
    params["finetune"]["epochs"] = 2
    (cluster.project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(cluster.project, "git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "2")
    driver = cluster.start(
        [
            sys.executable, "-m", "flows.sweep_flow", "--backend", "pool", "--pool", POOL,
            "--project", str(cluster.project), "--fractions", "0.5", "--seeds", "0",
            "--methods", "supervised",
        ],
        cluster.project, cluster.root / "stopped.log", cluster.env(PYTHONPATH=str(cluster.project)),
    )  # fmt: skip
    deadline = time.monotonic() + 400
    while not any("stages.finetune" in c for c in _stage_processes(worker)):
        assert driver.poll() is None, (cluster.root / "stopped.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "finetune never started on the worker"
        time.sleep(1)

    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C

    assert driver.wait(timeout=120) != 0
    deadline = time.monotonic() + 120
    while (left := _stage_processes(worker)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, left
    assert worker.poll() is None  # the worker itself goes on, ready for the next sweep
    # The worker reports the run it ended as Cancelled.
    sweep_id = re.search(
        r"sweep (\d{4}-\d{6}): commit", (cluster.root / "stopped.log").read_text()
    )[1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stopped = [r for r in _flow_runs() if r.parameters["name"].endswith(sweep_id)]
        if [r.state_type for r in stopped] == [StateType.CANCELLED]:
            break
        time.sleep(2)
    assert [(r.parameters["name"], r.state_type) for r in stopped] == [
        (f"supervised-f0.5-s0-{sweep_id}", StateType.CANCELLED)
    ]

"""One job of a sweep on a work pool, as a process worker runs it on its machine.

Every machine has its own clone of the project (with the package installed from it) and runs
`prefect worker start --pool NAME --type process --limit 1` there; the job works in the clone
whose code it runs. It checks out the sweep's commit from the git remote, pulls the shared
stages' outputs and DVC's run-cache from the DVC remote, runs its part of the pipeline, and
pushes back what it made: outputs and run-cache to the DVC remote, and either the experiment
ref (a combination) or the new dvc.lock (the shared stages) to the git remote. Stages log to
the MLflow tracking server of MLFLOW_TRACKING_URI, their runs tagged with the machine's name.

DVC and the stages run in the flow run's process group: cancelling the flow run (which is
what stopping a sweep does) ends them all.
"""

import json
import os
import socket
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from flows.dvc_command import checked_dvc, command_environment
from flows.stage_graph import read_stage_graph
from flows.stage_reuse import stage_verdicts

# The clone this code was imported from: the job's workspace.
CLONE = Path(__file__).resolve().parents[1]
# The MLflow tag naming the machine a stage ran on.
MACHINE_TAG = "machine"
SWEEP_TAG = "finepseudo.sweep"
SHARED_JOB = "shared-stages"


class GitCommandError(RuntimeError):
    """A git command of a sweep job failed; the message quotes its output."""


def machine_name() -> str:
    """FINEPSEUDO_MACHINE, or the host name: names the machine in MLflow and in Prefect."""
    return os.environ.get("FINEPSEUDO_MACHINE") or socket.gethostname()


def sweep_branch(sweep: str) -> str:
    """The git branch that carries a sweep's commit (and its shared stages' dvc.lock)."""
    return f"sweep/{sweep}"


def git(root: Path, *args: str) -> str:
    """`git <args>` in `root`; its standard output, or GitCommandError quoting its errors."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise GitCommandError(
            f"`git {' '.join(args)}` in {root} exited with {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout.strip()


def _job_run_name() -> str:
    return f"{flow_run.parameters['name']} on {machine_name()}"


def _job_environment(root: Path, sweep: str) -> dict[str, str]:
    """The stages' environment: the tracking server, and every run MLflow opens tagged with
    this machine and sweep (MLFLOW_RUN_CONTEXT adds its tags to each new run)."""
    env = command_environment(root)
    env["MLFLOW_RUN_CONTEXT"] = json.dumps({MACHINE_TAG: machine_name(), SWEEP_TAG: sweep})
    if not subprocess.run(["git", "config", "user.name"], cwd=root, capture_output=True).stdout:
        # Commits of experiments need an author; a worker's account often has none set.
        env |= {"GIT_AUTHOR_NAME": f"sweep on {machine_name()}", "GIT_AUTHOR_EMAIL": "sweep@"}
        env |= {"GIT_COMMITTER_NAME": env["GIT_AUTHOR_NAME"], "GIT_COMMITTER_EMAIL": "sweep@"}
    return env


@flow(name="finepseudo-sweep-job", flow_run_name=_job_run_name)
def sweep_job(
    sweep: str,
    commit: str,
    name: str,
    shared_stages: list[str],
    overrides: dict[str, str] | None = None,
    git_remote: str = "origin",
) -> dict[str, str]:
    """Run one job of sweep `sweep` at `commit` in this machine's clone: the shared stages
    when `overrides` is None, else the combination `overrides` sets (run.method, run.fraction,
    run.seed) as the DVC experiment `name`. Returns what DVC did with each stage; the same
    table is left as an artifact of the flow run, where the sweep reads it."""
    logger = get_run_logger()
    root = CLONE
    env = _job_environment(root, sweep)
    logger.info("machine %s, clone %s, commit %s", machine_name(), root, commit)
    branch = sweep_branch(sweep)
    git(root, "fetch", "--quiet", git_remote, f"+refs/heads/{branch}:refs/sweeps/{branch}")
    # The clone is the worker's own: what the previous job left in it (params.yaml and dvc.lock
    # of its experiment) gives way to the sweep's commit.
    git(root, "checkout", "--quiet", "--force", "--detach", commit)
    checked_dvc(root, ["pull", "--allow-missing", "--run-cache", *shared_stages], logger.info, env)

    output: list[str] = []

    def echo(line: str) -> None:
        output.append(line)
        logger.info(line)

    if overrides is None:
        checked_dvc(root, ["repro", *shared_stages], echo, env)
        checked_dvc(root, ["push", "--run-cache", *shared_stages], logger.info, env)
        # dvc.lock, and the .gitignore files DVC writes beside new outputs.
        lock_files = ["dvc.lock", "*.gitignore"]
        if git(root, "status", "--porcelain", "--", *lock_files):
            git(root, "add", "--all", "--", *lock_files)
            git(root, "commit", "--quiet", "-m", f"sweep {sweep}: shared stages' dvc.lock")
            git(root, "push", "--quiet", git_remote, f"HEAD:refs/heads/{branch}")
            logger.info("pushed %s to %s %s", git(root, "rev-parse", "HEAD"), git_remote, branch)
        stages = shared_stages
    else:
        args = ["exp", "run", "--pull", "--name", name]
        for key, value in overrides.items():
            args += ["--set-param", f"{key}={value}"]
        checked_dvc(root, args, echo, env)
        checked_dvc(root, ["exp", "push", "--run-cache", git_remote, name], logger.info, env)
        stages = read_stage_graph(root).names
    verdicts = stage_verdicts(stages, output)
    create_table_artifact(
        table=[{"stage": stage, "verdict": verdict} for stage, verdict in verdicts.items()],
        description=f"what DVC did with each stage of {name} on {machine_name()}",
    )
    return dict(verdicts)

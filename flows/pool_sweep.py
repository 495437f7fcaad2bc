"""A sweep on a Prefect work pool: the driver's side.

The driver pushes the sweep's commit to the git remote (branch `sweep/<id>`), registers the
job flow (flows.sweep_job) as a deployment of the pool, and submits one flow run per job:

1. the shared stages, once; their outputs travel through the DVC remote and the dvc.lock the
   job pushes on the sweep's branch (persist outputs such as data/frames are never in DVC's
   run-cache, so dvc.lock is how other machines find them);
2. per label fraction x split seed, the first method's combination: it runs the stages that
   read no run.method (metric_learning, finetune) and pushes them to the run-cache;
3. the other methods of that fraction x seed, which restore those stages from the run-cache.

Faults: Prefect does not rerun a Crashed flow run by itself, so the driver submits it again
(up to `attempts` runs per job). A flow run whose worker stopped heartbeating (its machine died
or lost the network) is marked Crashed by the driver first. A Failed run (a stage raised) is
not retried: it would fail again; the sweep ends with the list of what failed and why.
Stopping the driver cancels every flow run it submitted; their workers end each run's process
group (the job, DVC and the stage processes).
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.deployments.runner import EntrypointType
from prefect.states import Cancelling, Crashed

from flows.sweep_job import SHARED_JOB, git, sweep_branch, sweep_job

DEPLOYMENT = "pool"
# Worker heartbeats a worker may miss before the driver counts it as gone.
_MISSED_HEARTBEATS = 3
_WORKER_LABEL = "prefect.worker.name"


class PoolError(RuntimeError):
    """The project or the pool cannot run a sweep (no such pool, uncommitted changes...)."""


@dataclass
class Job:
    """One flow run to get done: the shared stages (no overrides) or one combination."""

    name: str
    overrides: dict[str, str] | None
    after: str | None  # the job that must complete before this one starts
    attempts: int = 0
    flow_run_id: UUID | None = None
    status: str = "waiting"  # waiting, submitted, done, failed
    reasons: list[str] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    machines: list[str] = field(default_factory=list)


def plan_jobs(combinations: Sequence[tuple[str, float, int]], names: Sequence[str]) -> list[Job]:
    """The shared job, then per fraction x seed the first combination, then the others after
    it, so they restore the stages that read no run.method from the run-cache."""
    jobs = [Job(SHARED_JOB, None, None)]
    first_of: dict[tuple[float, int], str] = {}
    for (method, fraction, seed), name in zip(combinations, names, strict=True):
        overrides = {"run.method": method, "run.fraction": str(fraction), "run.seed": str(seed)}
        after = first_of.setdefault((fraction, seed), name)
        jobs.append(Job(name, overrides, SHARED_JOB if after == name else after))
    return jobs


def publish_commit(root: Path, sweep: str, git_remote: str) -> str:
    """Push HEAD as the sweep's branch; refuse uncommitted changes, which no worker would see."""
    changed = git(root, "status", "--porcelain", "--untracked-files=no")
    if changed:
        raise PoolError(
            f"uncommitted changes in {root} (workers check out the sweep's commit, so they would "
            f"not see them); commit them first:\n{changed}"
        )
    commit = git(root, "rev-parse", "HEAD")
    git(root, "push", "--quiet", git_remote, f"{commit}:refs/heads/{sweep_branch(sweep)}")
    return commit


def branch_head(root: Path, sweep: str, git_remote: str) -> str:
    """The commit at the tip of the sweep's branch on the git remote."""
    listed = git(root, "ls-remote", git_remote, f"refs/heads/{sweep_branch(sweep)}")
    if not listed:
        raise PoolError(f"the git remote {git_remote} has no branch {sweep_branch(sweep)}")
    return listed.split()[0]


def deploy_job(pool: str) -> str:
    """Register the job flow as deployment `finepseudo-sweep-job/pool` of `pool`; its
    entrypoint is a module path, so each worker runs it from the clone it has installed."""
    with get_client(sync_client=True) as client:
        pools = [found.name for found in client.read_work_pools()]
    if pool not in pools:
        raise PoolError(
            f"no work pool {pool!r} (pools: {pools}); create it with "
            f"`prefect work-pool create {pool} --type process` or start a worker with "
            f"`prefect worker start --pool {pool} --type process --limit 1`"
        )
    deployment = sweep_job.to_deployment(
        name=DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH
    )
    deployment.apply(work_pool_name=pool)
    return f"{sweep_job.name}/{DEPLOYMENT}"


def _worker_gone(client: SyncPrefectClient, pool: str, flow_run: FlowRun) -> str | None:
    """Why the worker running `flow_run` counts as gone (no heartbeat for a while), or None."""
    worker_name = flow_run.labels.get(_WORKER_LABEL)
    if not worker_name:
        return None
    for worker in client.read_workers_for_work_pool(pool):
        if worker.name != worker_name or worker.last_heartbeat_time is None:
            continue
        interval = worker.heartbeat_interval_seconds or 30
        silent = (datetime.now(UTC) - worker.last_heartbeat_time).total_seconds()
        if silent > _MISSED_HEARTBEATS * interval:
            return f"worker {worker_name} sent no heartbeat for {silent:.0f} s"
    return None


def _verdicts(client: SyncPrefectClient, flow_run_id: UUID) -> dict[str, str]:
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    for artifact in artifacts:
        if artifact.type == "table":
            rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
            return {row["stage"]: row["verdict"] for row in rows}
    return {}


def run_on_pool(
    root: Path,
    pool: str,
    sweep: str,
    jobs: list[Job],
    shared_stages: list[str],
    git_remote: str,
    attempts: int,
    poll_seconds: float,
    echo: Callable[[str], None],
) -> list[Job]:
    """Get every job done on the pool, in `plan_jobs` order; returns them with their status,
    what DVC did with each stage, the machines that ran them and, for failures, why."""
    commit = publish_commit(root, sweep, git_remote)
    deployment = deploy_job(pool)
    echo(f"sweep {sweep}: commit {commit} on {git_remote} {sweep_branch(sweep)}, pool {pool}")
    by_name = {job.name: job for job in jobs}

    def submit(job: Job) -> None:
        job.attempts += 1
        flow_run = run_deployment(
            deployment,
            parameters={
                "sweep": sweep,
                "commit": commit,
                "name": job.name if job.attempts == 1 else f"{job.name}-r{job.attempts}",
                "shared_stages": shared_stages,
                "overrides": job.overrides,
                "git_remote": git_remote,
            },
            timeout=0,  # submit only; the loop below follows it
            tags=[f"sweep:{sweep}"],
        )
        job.flow_run_id, job.status = flow_run.id, "submitted"
        echo(f"submitted {job.name} (attempt {job.attempts}) as flow run {flow_run.id}")

    def crashed(job: Job, reason: str) -> None:
        job.reasons.append(f"attempt {job.attempts}: {reason}")
        if job.attempts < attempts:
            echo(f"{job.name}: {reason}; submitting it again")
            submit(job)
        else:
            job.status = "failed"

    try:
        with get_client(sync_client=True) as client:
            while any(job.status in ("waiting", "submitted") for job in jobs):
                for job in jobs:
                    if job.status != "waiting":
                        continue
                    before = by_name.get(job.after) if job.after else None
                    if before is None or before.status == "done":
                        submit(job)
                    elif before.status == "failed" and before.name == SHARED_JOB:
                        job.status = "failed"
                        job.reasons.append("never started: the shared stages failed")
                    elif before.status == "failed":
                        submit(job)  # it computes what the failed one would have shared
                for job in jobs:
                    if job.status != "submitted":
                        continue
                    flow_run = client.read_flow_run(job.flow_run_id)
                    state = flow_run.state
                    if flow_run.labels.get(_WORKER_LABEL):
                        machine = flow_run.labels[_WORKER_LABEL]
                        if not job.machines or job.machines[-1] != machine:
                            job.machines.append(machine)
                    if state is None:
                        continue
                    if state.type == StateType.COMPLETED:
                        job.status = "done"
                        job.verdicts = _verdicts(client, job.flow_run_id)
                        if job.name == SHARED_JOB:
                            commit = branch_head(root, sweep, git_remote)
                        echo(f"{job.name} done on {' then '.join(job.machines)}")
                    elif state.type == StateType.CRASHED:
                        crashed(job, f"crashed: {state.message}")
                    elif state.type in (StateType.FAILED, StateType.CANCELLED):
                        job.status = "failed"
                        job.reasons.append(f"{state.name.lower()}: {state.message}")
                    elif state.type in (StateType.PENDING, StateType.RUNNING):
                        gone = _worker_gone(client, pool, flow_run)
                        if gone:
                            client.set_flow_run_state(
                                job.flow_run_id, Crashed(message=gone), force=True
                            )
                            crashed(job, gone)
                time.sleep(poll_seconds)
    except BaseException:
        cancel(jobs, echo)
        raise
    return jobs


def cancel(jobs: Sequence[Job], echo: Callable[[str], None]) -> None:
    """Cancel the jobs' unfinished flow runs; each worker then ends its run's process group."""
    with get_client(sync_client=True) as client:
        for job in jobs:
            if job.flow_run_id is None:
                continue
            state = client.read_flow_run(job.flow_run_id).state
            if state is not None and not state.is_final():
                client.set_flow_run_state(job.flow_run_id, Cancelling(), force=True)
                echo(f"cancelling {job.name} (flow run {job.flow_run_id})")

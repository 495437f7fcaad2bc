"""Sweep label splits: label fractions x split seeds x methods, each combination a DVC experiment
of the pipeline, then the comparison of all of them from MLflow.

The stages every combination shares (those that read no `run.*` param: dataset, frames, splits,
self-supervised pretraining) run once; the experiments check their outputs out of DVC's cache
instead of running them again, and stages that read no run.method restore from DVC's run-cache
for all but one method. The sweep ends by printing how many stage runs it reused.

Two backends:
- `local` (default): the shared stages in the workspace through the pipeline flow, then DVC's
  experiment queue on this machine, `--jobs` at a time;
- `pool`: every job a flow run on a Prefect work pool of process workers, each machine in its
  own clone, sharing a git remote, a DVC remote and an MLflow tracking server
  (flows/pool_sweep.py; docs/cluster.md sets it up).

    python -m flows.sweep_flow --fractions 0.05 0.1 0.2 --seeds 0 1 2 --jobs 2
    python -m flows.sweep_flow --backend pool --pool gpus --fractions 0.05 0.1 0.2 --seeds 0 1 2
"""

import argparse
import itertools
import os
import time
from datetime import datetime
from pathlib import Path

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from flows.dvc_command import command_environment
from flows.experiment_queue import (
    FINAL_STATES,
    follow_logs,
    print_logs,
    queue_experiment,
    queue_status,
    start_workers,
    stop_workers,
)
from flows.pipeline_flow import finepseudo_pipeline
from flows.pool_sweep import plan_jobs, run_on_pool
from flows.stage_graph import read_stage_graph
from flows.stage_reuse import ReuseCount, stage_verdicts
from pipeline.compare import METHODS, compare_runs, experiment_id, log_comparison
from pipeline.config import Params, load_params
from pipeline.tracking import config_digest

BACKENDS = ("local", "pool")
# Seconds with no worker answering and nothing running before the workers are restarted: well
# past the time a worker takes to start on a loaded machine, so none is started twice.
_STALL_SECONDS = 60.0


class ExperimentFailed(RuntimeError):
    """A queued experiment of the sweep ended in DVC's Failed state."""


def experiment_name(method: str, fraction: float, seed: int, sweep: str) -> str:
    """The DVC experiment name of one combination (unique per sweep, as DVC requires)."""
    return f"{method}-f{fraction:g}-s{seed}-{sweep}"


def check_choices(
    params: Params, fractions: list[float], seeds: list[int], methods: list[str]
) -> None:
    """Refuse a combination the pipeline cannot run, naming the valid choices."""
    checks = [
        ("fractions", fractions, params.splits.fractions, "splits.fractions"),
        ("seeds", seeds, params.splits.seeds, "splits.seeds"),
        ("methods", methods, METHODS, "the methods"),
    ]
    for option, chosen, valid, source in checks:
        unknown = [value for value in chosen if value not in valid]
        if unknown or not chosen:
            raise ValueError(f"--{option} {chosen}: {unknown or 'none'} not in {source} {valid}")


@task(task_run_name="{name}", cache_policy=NO_CACHE)
def experiment(project: str, name: str, poll_seconds: float) -> dict[str, str]:
    """Follow one started experiment: its output goes to this task's log; fails when DVC
    reports it failed. Returns what DVC did with each stage."""
    logger = get_run_logger()
    root = Path(project)
    env = command_environment(root)
    output: list[str] = []

    def echo(line: str) -> None:
        output.append(line)
        logger.info(line)

    followed = follow_logs(root, name, echo, env)
    while (state := queue_status(root, env).states.get(name)) not in FINAL_STATES:
        time.sleep(poll_seconds)  # the worker still collects the experiment's results
    if not followed:
        output.clear()
        print_logs(root, name, echo, env)
    if state == "Failed":
        raise ExperimentFailed(
            f"DVC experiment {name} failed; `dvc queue logs {name}` has its output"
        )
    return stage_verdicts(read_stage_graph(root).names, output)


def _run_queue(
    root: Path, names: list[str], jobs: int, poll_seconds: float
) -> dict[str, PrefectFuture]:
    """Start workers and an `experiment` task for each experiment as it starts.

    Busy workers may not answer DVC's status ping, so workers count as gone only when nothing
    in the queue runs and none answers for _STALL_SECONDS; then they restart (DVC's workers
    can stop while experiments still wait).
    """
    logger = get_run_logger()
    env = command_environment(root)
    start_workers(root, jobs, logger.info, env)
    followed: dict[str, PrefectFuture] = {}
    stalled_since = time.monotonic()
    while len(followed) < len(names):
        time.sleep(poll_seconds)
        status = queue_status(root, env)
        for name in names:
            if name not in followed and status.states.get(name) not in (None, "Queued"):
                followed[name] = experiment.submit(str(root), name, poll_seconds)
        if status.workers or "Running" in status.states.values():
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > _STALL_SECONDS:
            logger.warning("the queue workers stopped with experiments waiting; restarting them")
            start_workers(root, jobs, logger.info, env)
            stalled_since = time.monotonic()
    return followed


def threads_per_experiment(threads: int, jobs: int) -> int:
    """run.threads of each queued experiment: the params' own when set, else this machine's
    cores shared out among the `jobs` experiments that run at once (each would otherwise take
    every core, and their threads would take turns on them)."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def _run_local(
    root: Path,
    combinations: list[tuple[str, float, int]],
    names: list[str],
    jobs: int,
    threads: int,
    retries: int,
    poll_seconds: float,
    reuse: ReuseCount,
) -> dict[str, str]:
    """The shared stages in the workspace (at run.threads), then each combination in DVC's
    experiment queue, `jobs` at a time with `threads` torch threads each; returns the failed
    experiments and why."""
    logger = get_run_logger()
    env = command_environment(root)
    shared = [stage.name for stage in read_stage_graph(root).shared()]
    shared_stages = finepseudo_pipeline.with_options(flow_run_name="shared stages")
    reuse.add("shared stages", shared_stages(project=str(root), stages=shared, retries=retries))

    status = queue_status(root, env)
    if status.workers:
        raise RuntimeError(
            f"{status.workers} DVC queue worker(s) already run in {root}; they would log to the "
            "MLflow store of their own environment. Wait for them or run `dvc queue stop`."
        )
    for (method, fraction, seed), name in zip(combinations, names, strict=True):
        overrides = {
            "run.method": method,
            "run.fraction": fraction,
            "run.seed": seed,
            "run.threads": threads,  # where it runs, not what it computes: no stage depends on it
        }
        queue_experiment(root, name, overrides, logger.info, env)
    try:
        followed = _run_queue(root, names, jobs, poll_seconds)
        for future in followed.values():
            future.wait()
    finally:
        stop_workers(root, logger.info, env)
    failed = {}
    for name, future in followed.items():
        if future.state.is_completed():
            reuse.add(name, future.result())
        else:
            failed[name] = future.state.message or future.state.name
    return failed


@flow(name="finepseudo-label-split-sweep")
def label_split_sweep(
    fractions: list[float] | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    jobs: int = 1,
    project: str = ".",
    out: str = "comparison",
    retries: int = 1,
    poll_seconds: float = 5.0,
    backend: str = "local",
    pool: str | None = None,
    git_remote: str = "origin",
    attempts: int = 3,
) -> str:
    """Run every combination of label fraction, split seed and method (default: all of
    splits.fractions, splits.seeds and the methods) as a DVC experiment, then write the
    comparison to `out` and log it to MLflow; returns the comparison's Markdown.

    `backend` "local" runs them in DVC's queue here, `jobs` at a time; "pool" submits them to
    the Prefect work pool `pool`, through the git remote `git_remote`, each job run up to
    `attempts` times when its worker dies. Fails, after writing the comparison of the others,
    when any combination failed, naming each and why.
    """
    logger = get_run_logger()
    started = time.monotonic()
    root = Path(project).resolve()
    params = load_params(root / "params.yaml")
    fractions = list(params.splits.fractions) if fractions is None else fractions
    seeds = list(params.splits.seeds) if seeds is None else seeds
    methods = METHODS if methods is None else methods
    check_choices(params, fractions, seeds, methods)
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {BACKENDS}")
    env = command_environment(root)
    if backend == "pool" and not pool:
        raise ValueError("the pool backend needs the name of a work pool (--pool NAME)")
    if backend == "pool" and not env["MLFLOW_TRACKING_URI"].startswith(("http://", "https://")):
        raise ValueError(
            f"the pool backend needs an MLflow tracking server every machine reaches; "
            f"MLFLOW_TRACKING_URI is {env['MLFLOW_TRACKING_URI']} (docs/cluster.md)"
        )
    sweep = datetime.now().strftime("%m%d-%H%M%S")
    combinations = list(itertools.product(methods, fractions, seeds))
    names = [experiment_name(*combination, sweep) for combination in combinations]
    reuse = ReuseCount()

    if backend == "local":
        threads = threads_per_experiment(params.run.threads, jobs)
        failures = _run_local(
            root, combinations, names, jobs, threads, retries, poll_seconds, reuse
        )
    else:
        shared = [stage.name for stage in read_stage_graph(root).shared()]
        done = run_on_pool(
            root=root,
            pool=pool,
            sweep=sweep,
            jobs=plan_jobs(combinations, names),
            shared_stages=shared,
            git_remote=git_remote,
            attempts=attempts,
            poll_seconds=poll_seconds,
            echo=logger.info,
        )
        for job in done:
            if job.status == "done":
                reuse.add(job.name, job.verdicts)
            logger.info(
                "%s: %s on %s%s",
                job.name,
                job.status,
                " then ".join(job.machines) or "no machine",
                f" ({'; '.join(job.reasons)})" if job.reasons else "",
            )
        failures = {job.name: "; ".join(job.reasons) for job in done if job.status != "done"}

    # ============ the comparison ============
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    comparison = compare_runs(client, params.dataset.name, config=config_digest(params))
    files = comparison.save(root / out)
    description = {
        "sweep": sweep,
        "methods": " ".join(methods),
        "fractions": " ".join(map(str, fractions)),
        "seeds": " ".join(map(str, seeds)),
        "config": config_digest(params),
    }
    log_comparison(client, experiment_id(client, params.dataset.name), files, description)
    logger.info("comparison written to %s:\n%s", root / out, comparison.markdown())
    stages = len(read_stage_graph(root).names)
    logger.info(reuse.summary(len(combinations), stages))
    minutes = (time.monotonic() - started) / 60
    logger.info("the sweep of %d combinations took %.1f minutes", len(combinations), minutes)
    if failures:
        listed = "\n".join(f"  {name}: {why}" for name, why in failures.items())
        raise ExperimentFailed(f"{len(failures)} of {len(names)} combinations failed:\n{listed}")
    return comparison.markdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fractions", type=float, nargs="+", help="label fractions (default: splits.fractions)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="split seeds (default: splits.seeds)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="methods (default: all)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="experiments at once; each gets run.threads torch threads, or when that is 0 "
        "(all cores) the cores divided by --jobs",
    )
    parser.add_argument("--project", default=".", help="DVC project folder (holds dvc.yaml)")
    parser.add_argument(
        "--out", default="comparison", help="folder for the comparison, inside the project"
    )
    parser.add_argument("--retries", type=int, default=1, help="reruns of a failed shared stage")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: DVC's queue on this machine; pool: a Prefect work pool (docs/cluster.md)",
    )
    parser.add_argument("--pool", help="the work pool of the pool backend")
    parser.add_argument(
        "--git-remote", default="origin", help="git remote the pool's machines clone from"
    )
    parser.add_argument(
        "--attempts", type=int, default=3, help="runs of a pool job whose worker died"
    )
    args = parser.parse_args()
    label_split_sweep(
        fractions=args.fractions,
        seeds=args.seeds,
        methods=args.methods,
        jobs=args.jobs,
        project=args.project,
        out=args.out,
        retries=args.retries,
        backend=args.backend,
        pool=args.pool,
        git_remote=args.git_remote,
        attempts=args.attempts,
    )


if __name__ == "__main__":
    main()

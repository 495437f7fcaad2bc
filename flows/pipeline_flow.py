"""The DVC pipeline as a Prefect flow: every stage of dvc.yaml is a task named after it.

DVC still runs each stage (`dvc repro --single-item`), so it alone decides what reruns and keeps
dvc.lock and its cache; a stage it skips ends as a Completed state named "Skipped" (unchanged
since dvc.lock) or "Cached" (outputs restored from the run-cache). Stages run one at a time:
DVC holds one lock per workspace.

    python -m flows.pipeline_flow                    # the whole pipeline
    python -m flows.pipeline_flow --stage finetune   # one stage and what it depends on
"""

import argparse
import signal
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.dvc_command import command_environment, reproduce_stage, stop_dvc_commands
from flows.stage_graph import read_stage_graph
from pipeline.config import load_params, load_stage_params
from pipeline.health.record import read_health
from pipeline.tracking import parent_run_name


class PipelineFailed(RuntimeError):
    """A stage failed (after its retries), or never started because one it depends on failed."""


# The state a task ends in when DVC did not run the stage's command.
SKIPPED_STATE_NAMES = {"cached": "Cached", "skipped": "Skipped"}


def _show_health(root: Path, stage: str) -> None:
    """Put the health report the stage just wrote (pipeline/health) on this task as a markdown
    artifact, with a warning log when it is unhealthy."""
    report = read_health(root, stage)
    if report is None:  # a stage without health checks
        return
    rows = [
        f"| {c['name']} | {c['value']:.4g} | {c['chance']:.4g} | {c['threshold']:.4g} | "
        f"{'healthy' if c['healthy'] else 'UNHEALTHY'} |"
        for c in report["checks"]
    ]
    create_markdown_artifact(
        "\n".join(
            [
                f"**{stage}: {report['verdict']}**, measured on {report['clips']}",
                "",
                "| check | value | chance | bar | verdict |",
                "| --- | ---: | ---: | ---: | --- |",
                *rows,
            ]
        ),
        key=f"health-{stage}".replace("@", "-").replace("_", "-").lower(),
        description=f"health of {stage}",
    )
    if report["verdict"] != "healthy":
        failed = [c["name"] for c in report["checks"] if not c["healthy"]]
        get_run_logger().warning(f"{stage} is unhealthy: {failed} no better than chance")


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def dvc_stage(project: str, stage: str) -> State | str:
    """Bring one stage up to date through DVC; its output goes to this task's log."""
    logger = get_run_logger()
    root = Path(project)
    verdict = reproduce_stage(root, stage, logger.info, command_environment(root))
    if verdict in SKIPPED_STATE_NAMES:
        return Completed(
            name=SKIPPED_STATE_NAMES[verdict], message=f"DVC {verdict} {stage}", data=verdict
        )
    _show_health(root, stage)
    return verdict


def _run_name() -> str:
    params = load_params(Path(flow_run.parameters["project"]) / "params.yaml")
    return parent_run_name(params)


@flow(
    name="finepseudo-pipeline",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=1),
)
def finepseudo_pipeline(
    project: str = ".",
    stages: list[str] | None = None,
    retries: int = 1,
    retry_delay_seconds: float = 10.0,
) -> dict[str, str]:
    """Run the stages of dvc.yaml in `project` (all, or `stages` and what they depend on) in
    dependency order; return what DVC did with each: ran, cached or skipped.

    A failed stage is retried `retries` times, `retry_delay_seconds` apart; the stages that
    depend on it do not start, the others still run, and the flow fails naming them.

    SIGTERM (which Prefect raises here as TerminationSignal) or SIGINT stops the running DVC
    command and its stage, as a process group, before the flow run ends Crashed.
    """
    root = Path(project).resolve()
    graph = read_stage_graph(root)
    selected = graph.with_upstream(stages) if stages else list(graph.stages)
    run_stage = dvc_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
    # One worker thread and submission in dependency order keep DVC's lock free for each
    # stage; wait_for lets the UI draw the edges of the graph.
    futures: dict[str, PrefectFuture] = {}
    for stage in selected:
        upstream = [futures[name] for name in stage.upstream if name in futures]
        futures[stage.name] = run_stage.submit(str(root), stage.name, wait_for=upstream)
    try:
        for future in futures.values():
            future.wait()  # stages that do not depend on a failed one still finish
    except BaseException:  # stopped: the stage must not outlive the flow run
        stop_dvc_commands()
        raise
    unfinished = [name for name, future in futures.items() if not future.state.is_completed()]
    if unfinished:
        raise PipelineFailed(
            f"stages failed or never started: {unfinished}; their task logs say why"
        )
    return {name: future.result() for name, future in futures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default=".", help="DVC project folder (holds dvc.yaml)")
    parser.add_argument(
        "--stage",
        action="append",
        dest="stages",
        help="run this stage and its upstream only (repeatable)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="reruns of a failed stage; 0 for none"
    )
    parser.add_argument("--retry-delay", type=float, default=10.0, help="seconds between reruns")
    args = parser.parse_args()
    load_stage_params(Path(args.project) / "params.yaml")  # a params error: its message, no run
    try:
        finepseudo_pipeline(
            project=args.project,
            stages=args.stages,
            retries=args.retries,
            retry_delay_seconds=args.retry_delay,
        )
    except KeyboardInterrupt:  # Ctrl-C: the flow run is Crashed, its stage stopped
        raise SystemExit(128 + signal.SIGINT) from None


if __name__ == "__main__":
    main()

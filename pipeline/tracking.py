"""MLflow tracking shared by every stage.

DVC runs each stage as its own process, yet a researcher wants one MLflow run per pipeline
run (dataset x method x label fraction x split seed) with the stages beneath it. Every stage
therefore derives the same key from the validated params, finds the parent run that carries
that key (or creates it) and opens a child run tagged `stage=<name>` under it.

The store is SQLite (`sqlite:///mlflow.db` in the working directory, which DVC makes the
repository root) unless MLFLOW_TRACKING_URI names another; artifacts go to `mlartifacts/`
beside the database file.
"""

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import RUN_PLACEMENT_KEYS, RUN_SWEPT_KEYS, Params

if TYPE_CHECKING:
    import torch

# Telemetry stays off for every process that tracks runs, whatever the caller's shell says.
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402  (after the telemetry switches above)
from mlflow.entities import Param, RunStatus  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PIPELINE_TAG = "finepseudo.pipeline"
CONFIG_TAG = "finepseudo.config"
STAGE_TAG = "stage"
# Set on a parent run once the pipeline's headline metrics are on it: the run holds a whole
# result, and no later attempt of a stage (failed, interrupted) relabels it.
COMPLETE_TAG = "finepseudo.complete"
# Prefix of the parent's tags naming the child run that last completed each stage.
STAGE_RUN_TAG = "finepseudo.stage_run."


def stage_link_tag(stage: str) -> str:
    """The parent's tag that links `stage`'s child run; MLflow tag names take no `@`, so
    pseudo_label@round_1 links as finepseudo.stage_run.pseudo_label:round_1."""
    return STAGE_RUN_TAG + stage.replace("@", ":")


# Params that say which pipeline run this is, or where it runs, rather than how it trains.
_RUN_IDENTITY_KEYS = (*RUN_SWEPT_KEYS, *RUN_PLACEMENT_KEYS)


def tracking_uri() -> str:
    """The tracking URI every stage and command uses."""
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def artifact_root(uri: str) -> str:
    """Where artifacts of a SQLite store live: `mlartifacts/` beside the database file."""
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "mlartifacts").as_uri()
    return ""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten({str(k): v for k, v in value.items()}, f"{name}."))
        else:
            flat[name] = value
    return flat


def _digest(flat: dict[str, Any]) -> str:
    canonical = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def config_digest(params: Params) -> str:
    """Identifies an experimental setting: every param but the run's identity."""
    flat = flatten(params.model_dump(mode="json"))
    return _digest({k: v for k, v in flat.items() if k not in _RUN_IDENTITY_KEYS})


def pipeline_key(params: Params) -> str:
    """Identifies one pipeline run: the setting plus method, label fraction and split seed."""
    run = params.run
    return f"{run.method}-f{run.fraction}-s{run.seed}-{config_digest(params)}"


def parent_run_name(params: Params) -> str:
    run = params.run
    return f"{run.method} {run.fraction:.0%} labels seed {run.seed}"


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=artifact_root(tracking_uri()) or None
        )
    except mlflow.exceptions.MlflowException:
        # Another stage process created it between our lookup and our create.
        return client.get_experiment_by_name(name).experiment_id


def parent_run_id(client: MlflowClient, params: Params) -> str:
    """Find the parent run of this pipeline run, creating it with all params on first use."""
    experiment_id = _experiment_id(client, params.dataset.name)
    key = pipeline_key(params)
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    run = params.run
    parent = client.create_run(
        experiment_id,
        run_name=parent_run_name(params),
        tags={
            PIPELINE_TAG: key,
            CONFIG_TAG: config_digest(params),
            "method": run.method,
            "fraction": str(run.fraction),
            "split_seed": str(run.seed),
            "dataset": params.dataset.name,
        },
    )
    entries = [Param(k, str(v)[:500]) for k, v in flatten(params.model_dump(mode="json")).items()]
    for start in range(0, len(entries), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(parent.info.run_id, params=entries[start : start + 100])
    client.set_terminated(parent.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
    return parent.info.run_id


class StageInterrupted(SystemExit):
    """The stage was stopped by SIGTERM or SIGINT; exits quietly with status 128 + signal."""


def _close_abandoned(client: MlflowClient, experiment_id: str, parent_id: str, stage: str) -> None:
    """Runs of this stage left RUNNING by a process that was killed outright become KILLED."""
    abandoned = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.`{STAGE_TAG}` = '{stage}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    for run in abandoned:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))


def tracking_process() -> bool:
    """Whether this process records the stage: always, except the ranks other than 0 of a
    torchrun launch (torchrun sets RANK), which train alongside rank 0 and write nothing."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def stage_run(
    stage: str, params: Params, logged_params: dict[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun | None]:
    """Open the child run of `stage` under this pipeline's parent run.

    Under torchrun only rank 0 tracks: the other ranks (other machines, which may have no
    MLflow access and never hold the stage's outputs) get None and touch no MLflow run.

    Metrics and artifacts logged with the fluent API inside the block land on the child run.
    A stage that raises ends its run FAILED; one stopped by SIGTERM or SIGINT ends it KILLED.
    The parent follows (RUNNING while the stage runs, then FINISHED, FAILED or KILLED) until
    it is complete (`COMPLETE_TAG`); a complete parent stays FINISHED whatever a later attempt
    of one of its stages does, so a failed or interrupted rerun never relabels a whole result.
    On success the parent links the child under `stage_link_tag(stage)`.
    """
    if not tracking_process():
        yield None
        return
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    parent_id = parent_run_id(client, params)
    parent = client.get_run(parent_id)
    experiment_id = parent.info.experiment_id
    complete = parent.data.tags.get(COMPLETE_TAG) == "true"
    _close_abandoned(client, experiment_id, parent_id, stage)
    if not complete:
        client.update_run(parent_id, status=RunStatus.to_string(RunStatus.RUNNING))
    child = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=stage,
        tags={STAGE_TAG: stage, "mlflow.parentRunId": parent_id},
    )
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        # DVC, schedulers and the pipeline flow stop a stage with SIGTERM (Ctrl-C sends SIGINT);
        # as an exception it unwinds the stage, whose runs end KILLED. Python drops an exception
        # raised while it runs a finalizer, hence the record checked when the block ends.
        received.append(signum)
        raise StageInterrupted(128 + signum)

    previous_handlers = {
        signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)
    }

    def end(status: RunStatus) -> None:
        mlflow.end_run(RunStatus.to_string(status))
        client.set_terminated(
            parent_id, RunStatus.to_string(RunStatus.FINISHED if complete else status)
        )

    try:
        if logged_params:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(logged_params).items()})
        yield child
        if received:
            raise StageInterrupted(128 + received[0])
    except (StageInterrupted, KeyboardInterrupt):
        end(RunStatus.KILLED)
        raise
    except BaseException:
        end(RunStatus.FAILED)
        raise
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    client.set_tag(parent_id, stage_link_tag(stage), child.info.run_id)
    complete = complete or client.get_run(parent_id).data.tags.get(COMPLETE_TAG) == "true"
    end(RunStatus.FINISHED)


def log_parent_metrics(params: Params, metrics: dict[str, float], step: int = 0) -> None:
    """Log headline metrics (top-1, per-round pseudo-label counts) on the parent run, where
    comparisons read them."""
    client = MlflowClient(tracking_uri())
    parent_id = parent_run_id(client, params)
    for name, value in metrics.items():
        client.log_metric(parent_id, name, float(value), step=step)
    client.set_tag(parent_id, COMPLETE_TAG, "true")


def register_action_encoder(
    model: "torch.nn.Module",
    clip: dict[str, int],
    classes: list[str],
    metrics: dict[str, float],
    name: str,
) -> str:
    """Log the action encoder to the active run as an exported (pt2) MLflow model, register it
    under `name` with its class names and metrics, and return the new version.

    The exported graph loads with `mlflow.pytorch.load_model("models:/<name>/<version>")`
    without this package; its metadata holds the `classes` its output columns stand for and
    the `clip` geometry (frames, stride, crop) it expects.
    """
    # Imported here: the data stages track runs too and should not pay for importing torch.
    import mlflow.pytorch
    import torch

    model = model.cpu().eval()
    # A batch of two: an example batch of one would fix the exported batch size at one.
    example = torch.zeros(2, 3, clip["frames"], clip["crop"], clip["crop"])
    info = mlflow.pytorch.log_model(
        model,
        name="action_encoder",
        input_example=example.numpy(),
        registered_model_name=name,
        metadata={"classes": list(classes), "clip": clip, "metrics": metrics},
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(name, version, "classes", json.dumps(list(classes)))
    for metric, value in metrics.items():
        client.set_model_version_tag(name, version, metric, f"{value:.6g}")
    return version

"""Where a health report goes: the active MLflow run (tag `health`, metrics `health.*`), the
stage's log (stdout, which DVC and the Prefect task show) and a JSON file that the Prefect
pipeline flow reads back for the stage's task."""

import json
from pathlib import Path

import mlflow

from pipeline.atomic import atomic_output
from pipeline.checkpoint import load_checkpoint
from pipeline.health.checks import HealthReport

HEALTH_DIR = "health"  # beside dvc.yaml: health/<stage>.json, the latest report of each stage


def health_file(root: str | Path, stage: str) -> Path:
    """The JSON file of `stage`'s latest health report under the project `root`."""
    return Path(root) / HEALTH_DIR / f"{stage}.json"


def record_health(stage: str, report: HealthReport, root: str | Path = ".") -> None:
    """Log `stage`'s `report` to the active MLflow run, print it and write its JSON file."""
    mlflow.set_tag("health", report.verdict)
    mlflow.log_metrics(report.metrics())
    print(report.text(stage), flush=True)
    path = health_file(root, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report.to_json(stage), indent=1) + "\n")


def read_health(root: str | Path, stage: str) -> dict | None:
    """The latest health report of `stage` as written by record_health, or None."""
    path = health_file(root, stage)
    return json.loads(path.read_text()) if path.is_file() else None


def saved_health(path: str | Path) -> bool | None:
    """Whether the model file at `path` was healthy when its stage saved it (the stage keeps
    `health.healthy` among the file's metrics); None when it holds no verdict."""
    metrics = load_checkpoint(path).get("metrics", {})
    return bool(metrics["health.healthy"]) if "health.healthy" in metrics else None

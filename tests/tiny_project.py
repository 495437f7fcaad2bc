"""A throwaway copy of the project with a tiny dataset and tiny models, for tests that run the
real DVC pipeline, MLflow store and Prefect flows end to end in seconds to minutes."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Small enough for a whole pipeline in about a minute on two cores, big enough that every
# stage has real work: 4 classes, 6 training clips each, clips of 4-8 frames at 24 pixels.
TINY = {
    "synthesize": {
        "classes": 4,
        "train_per_class": 6,
        "test_per_class": 2,
        "min_frames": 16,
        "max_frames": 20,
        "workers": 1,
    },
    "extract": {"short_side": 32, "max_frames": 16, "min_frames": 8, "workers": 1},
    "splits": {"fractions": [0.5], "seeds": [0]},
    "run": {"method": "finepseudo", "fraction": 0.5, "seed": 0, "device": "cpu", "threads": 1},
    "action_encoder": {"widths": [4, 8]},
    "alignability_encoder": {
        "backbone_widths": [4, 8],
        "layers": 1,
        "heads": 2,
        "hidden": 16,
        "embedding": 8,
        "projection": 8,
    },
    "clips": {
        "action": {"frames": 4, "stride": 3, "crop": 24},
        "alignability": {"frames": 8, "stride": 2, "crop": 24},
    },
    "gitdl": {"epochs": 1, "batch_size": 8},
    "action_gitdl": {"epochs": 1, "batch_size": 8},
    "metric_learning": {"epochs": 2, "batch_size": 8, "warmup_epochs": 0},
    "finetune": {"epochs": 2, "batch_size": 4, "warmup_epochs": 0},
    "pseudo_label": {"threshold": 0.3, "batch_size": 8},
    "self_training": {
        "rounds": {"round_1": "round_0", "round_2": "round_1"},
        "retrain": {"steps": 6, "epochs": 1, "batch_size": 4},
        "retrain_alignability": {"epochs": 1},
    },
    "evaluate": {"clips": 2, "crops": 3, "batch_size": 12},
}

COPIED = ["dvc.yaml", "synthetic", ".dvcignore", "pipeline", "stages"]


def merge(base: dict, override: dict) -> dict:
    """Deep-merge `override` into a copy of `base` (dicts merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "rounds":
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_params(project: Path, overrides: dict | None = None) -> dict:
    params = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY), overrides or {})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def make_project(root: Path, overrides: dict | None = None) -> Path:
    """A git + DVC repository at `root` holding the project's code and tiny params."""
    root.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    write_params(root, overrides)
    (root / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/checkpoints/\n")
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "git", "add", "-A")
    run(
        root,
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.org",
        "commit",
        "-qm",
        "tiny project",
    )
    return root


def environment(root: Path) -> dict[str, str]:
    return os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DO_NOT_TRACK": "true",
        "OMP_NUM_THREADS": "1",
    }


def run(
    root: Path, *command: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=root,
        env=environment(root),
        check=check,
        timeout=timeout,
        capture_output=True,
        text=True,
    )


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

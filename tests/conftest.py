"""Fixtures that build tiny datasets of real H.264 files in every supported layout."""

import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.video_writer import write_mp4

os.environ.setdefault("DO_NOT_TRACK", "true")

# A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and so would
# every process a test starts: the flows the interrupt tests stop with Ctrl-C's SIGINT would not
# see it. Python's own handler here makes the processes the tests start take SIGINT's default.
signal.signal(signal.SIGINT, signal.default_int_handler)

CLASSES = [["Back", "Tuck"], ["Back", "Pike"], ["Forward", "Tuck"]]
TRAIN_PER_CLASS = 3
TEST_PER_CLASS = 1


def level_frames(count: int, height: int = 48, width: int = 64, offset: int = 0) -> np.ndarray:
    """Frames whose grey level encodes their index (frame i is level 40 + 5 i, up to 40 frames),
    so a test can tell from a stored frame's mean which source frame it came from."""
    levels = (40 + 5 * np.arange(count) + offset).clip(0, 255).astype(np.uint8)  # (T,)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def frame_index(frames: np.ndarray, offset: int = 0) -> np.ndarray:
    """Recover the source frame index of each stored frame made by `level_frames`."""
    return np.rint((frames.reshape(len(frames), -1).mean(axis=1) - 40 - offset) / 5).astype(int)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A temporary MLflow SQLite store shared by the tests that run stages as processes (its
    tables take seconds to create); each test names its own experiment via dataset.name."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # creates the tables once
    return uri


@pytest.fixture
def stage_env(tracking_uri: str) -> dict[str, str]:
    """Environment for `python -m stages.<name>` run from a temporary working directory."""
    repo = Path(__file__).resolve().parents[1]
    return {
        **os.environ,
        "PYTHONPATH": str(repo),
        "DO_NOT_TRACK": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }


@pytest.fixture(scope="session")
def clip_mp4(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """clip_mp4(frames=24, height=48, width=64, offset=0) -> path of an encoded MP4 (cached)."""
    folder = tmp_path_factory.mktemp("clips")

    def make(frames: int = 24, height: int = 48, width: int = 64, offset: int = 0) -> Path:
        path = folder / f"{frames}x{height}x{width}+{offset}.mp4"
        if not path.exists():
            write_mp4(path, level_frames(frames, height, width, offset))
        return path

    return make


def _place(clip: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, path)


def _videos(prefix: str) -> list[tuple[str, int, str]]:
    """(video name, label, subset) of the tiny dataset, 3 train and 1 test clip per class."""
    videos = []
    for label in range(len(CLASSES)):
        for subset, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
            videos += [(f"{prefix}{subset}_{label}_{i}", label, subset) for i in range(count)]
    return videos


@pytest.fixture
def diving48_dataset(tmp_path: Path, clip_mp4: Callable[..., Path]) -> Callable[..., Path]:
    """diving48_dataset(name="d48") -> root of a tiny Diving48-V2-layout dataset."""

    def make(name: str = "d48", frames: int = 24) -> Path:
        root = tmp_path / name
        entries: dict[str, list] = {"train": [], "test": []}
        for video, label, subset in _videos("v"):
            _place(clip_mp4(frames=frames, offset=label), root / "rgb" / f"{video}.mp4")
            entries[subset].append(
                {"vid_name": video, "label": label, "start_frame": 0, "end_frame": frames - 1}
            )
        (root / "Diving48_V2_train.json").write_text(json.dumps(entries["train"]))
        (root / "Diving48_V2_test.json").write_text(json.dumps(entries["test"]))
        (root / "Diving48_vocab.json").write_text(json.dumps(CLASSES))
        return root

    return make


@pytest.fixture
def list_dataset(tmp_path: Path, clip_mp4: Callable[..., Path]) -> Callable[..., Path]:
    """list_dataset("finegym" or "mmaction") -> root: train.txt, test.txt, classes.txt, videos/."""

    def make(kind: str) -> Path:
        root = tmp_path / kind
        lines: dict[str, list[str]] = {"train": [], "test": []}
        for video, label, subset in _videos(""):
            entry = video if kind == "finegym" else f"class{label}/{video}.mp4"
            _place(
                clip_mp4(offset=label),
                root / "videos" / (f"{video}.mp4" if kind == "finegym" else entry),
            )
            lines[subset].append(f"{entry} {label}")
        (root / "train.txt").write_text("\n".join(lines["train"]) + "\n")
        (root / "test.txt").write_text("\n".join(lines["test"]) + "\n")
        (root / "classes.txt").write_text("\n".join(" / ".join(c) for c in CLASSES) + "\n")
        return root

    return make


@pytest.fixture
def folders_dataset(tmp_path: Path, clip_mp4: Callable[..., Path]) -> Path:
    """A class-per-folder dataset: <root>/{train,test}/<class>/<video>.mp4."""
    root = tmp_path / "folders"
    for video, label, subset in _videos(""):
        _place(clip_mp4(offset=label), root / subset / f"class_{label}" / f"{video}.mp4")
    return root


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for the session (its own home and database, telemetry off);
    flows run in the test process report to it. Yields its API URL."""
    from prefect.settings import (
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        get_current_settings,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        pytest.MonkeyPatch.context() as patch,
        temporary_settings({PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}),
    ):
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # read by the server process
        with prefect_test_harness(server_startup_timeout=90):
            yield get_current_settings().api.url

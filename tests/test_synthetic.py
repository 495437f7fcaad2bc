"""The synthetic benchmark: Diving48 layout, decodable videos, determinism, the order-only
class pairs and the checks on its settings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from decord import VideoReader, cpu
from mlflow.tracking import MlflowClient
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from pipeline.config import ParamsError, SynthesizeParams, parse_params
from pipeline.data.synthetic.design import CLASSES, differing_phases, differs_only_in_order
from pipeline.data.synthetic.factors import sample_factors, split_frames
from pipeline.data.synthetic.preview import TITLE_HEIGHT
from pipeline.data.synthetic.render import render_clip
from pipeline.data.synthetic.writer import (
    FACTORS_FILE,
    PREVIEW_FILE,
    SPLIT_FILES,
    VIDEO_DIR,
    VOCAB_FILE,
    synthesize_dataset,
)

TINY = SynthesizeParams(
    classes=4, train_per_class=2, test_per_class=1, size=32, min_frames=16, max_frames=20, workers=2
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    synthesize_dataset(out=root, settings=TINY)
    return root


def _annotations(root: Path) -> dict[str, list[dict]]:
    return {split: json.loads((root / name).read_text()) for split, name in SPLIT_FILES.items()}


def _decode(root: Path, vid_name: str) -> np.ndarray:
    reader = VideoReader(str(root / VIDEO_DIR / f"{vid_name}.mp4"), ctx=cpu(0), num_threads=1)
    return reader.get_batch(list(range(len(reader)))).asnumpy()  # (T, H, W, 3)


def test_files_follow_the_diving48_layout(tiny: Path) -> None:
    annotations = _annotations(tiny)
    vocab = json.loads((tiny / VOCAB_FILE).read_text())
    assert vocab == [c.phases for c in CLASSES[:4]]
    assert all(len(entry) == 4 and all(isinstance(p, str) for p in entry) for entry in vocab)
    for split, per_class in (("train", 2), ("test", 1)):
        items = annotations[split]
        assert all(set(item) == {"vid_name", "label", "start_frame", "end_frame"} for item in items)
        assert all(item["start_frame"] == 0 and 15 <= item["end_frame"] <= 19 for item in items)
        assert sorted(item["label"] for item in items) == sorted(list(range(4)) * per_class)
    names = [item["vid_name"] for split in annotations.values() for item in split]
    assert len(set(names)) == len(names) == 12
    assert sorted(p.stem for p in (tiny / VIDEO_DIR).glob("*.mp4")) == sorted(names)
    factors = json.loads((tiny / FACTORS_FILE).read_text())
    assert set(factors) == set(names)
    # No temporary folder is left beside the dataset.
    assert [p.name for p in tiny.parent.iterdir()] == [tiny.name]


def test_every_video_decodes_to_its_annotated_length_and_size(tiny: Path) -> None:
    for items in _annotations(tiny).values():
        for item in items:
            frames = _decode(tiny, item["vid_name"])
            assert frames.shape == (item["end_frame"] + 1, 32, 56, 3)  # 16:9, width even
            assert frames.std() > 5  # an actor over a backdrop, not a blank video


def test_preview_has_a_row_per_shown_class(tiny: Path) -> None:
    with Image.open(tiny / PREVIEW_FILE) as image:
        # Of the preview's classes (0, 1, 2, 4, ...) the tiny dataset holds 0, 1 and 2.
        assert image.size == (8 * 56, 3 * (TITLE_HEIGHT + 32))


def test_same_seed_gives_identical_files_and_frames_for_any_worker_count(
    tiny: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    (again / "stale").mkdir(parents=True)  # whatever the folder held before is replaced
    synthesize_dataset(out=again, settings=TINY.model_copy(update={"workers": 1}))
    assert not (again / "stale").exists()
    for name in [*SPLIT_FILES.values(), VOCAB_FILE, FACTORS_FILE]:
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    for item in _annotations(tiny)["train"] + _annotations(tiny)["test"]:
        assert np.array_equal(_decode(again, item["vid_name"]), _decode(tiny, item["vid_name"]))


def test_another_seed_gives_another_dataset(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    synthesize_dataset(out=other, settings=TINY.model_copy(update={"seed": 1, "workers": 1}))
    assert (other / SPLIT_FILES["train"]).read_bytes() != (tiny / SPLIT_FILES["train"]).read_bytes()
    first, second = _decode(tiny, "train_00000"), _decode(other, "train_00000")
    assert first.shape != second.shape or np.abs(first.astype(int) - second).mean() > 5


def _matching(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean absolute grey-level difference between the frames of two clips (T, H, W, 3) when
    frame i is compared with frame i, and under the best one-to-one pairing of frames."""
    flat_a, flat_b = a.reshape(len(a), -1).astype(float), b.reshape(len(b), -1).astype(float)
    cost = cdist(flat_a, flat_b, "cityblock") / flat_a.shape[1]  # (T, T)
    rows, cols = linear_sum_assignment(cost)
    return float(np.diag(cost).mean()), float(cost[rows, cols].mean())


@pytest.mark.parametrize(
    ("a", "b", "phase"),
    [(0, 1, "takeoff"), (0, 2, "rotation"), (5, 7, "rotation"), (12, 15, "takeoff")],
)
def test_order_only_pairs_hold_the_same_frames_in_another_order(a: int, b: int, phase: str) -> None:
    assert differs_only_in_order(CLASSES[a], CLASSES[b])
    assert phase in differing_phases(CLASSES[a], CLASSES[b])
    # square frames: the thresholds below are per pixel, and wider frames add backdrop
    settings = SynthesizeParams(size=48, aspect=1.0)
    for seed in (a, b):
        factors = sample_factors(np.random.default_rng(seed), settings)
        first = render_clip(a, factors, settings, noise=False)
        second = render_clip(b, factors, settings, noise=False)
        in_order, best = _matching(first, second)
        assert best < 0.05  # the same multiset of frames, up to rounding of a few pixels
        assert in_order > 1.0  # shown in a different order
        assert np.abs(first.mean(0) - second.mean(0)).max() < 0.5  # what a pooled feature sees


@pytest.mark.parametrize(("a", "b"), [(0, 4), (0, 8), (3, 11)])
def test_classes_differing_in_one_phase_hold_different_poses(a: int, b: int) -> None:
    assert not differs_only_in_order(CLASSES[a], CLASSES[b])
    assert len(differing_phases(CLASSES[a], CLASSES[b])) == 1
    # square frames: the thresholds below are per pixel, and wider frames add backdrop
    settings = SynthesizeParams(size=48, aspect=1.0)
    factors = sample_factors(np.random.default_rng(0), settings)
    _, best = _matching(
        render_clip(a, factors, settings, noise=False),
        render_clip(b, factors, settings, noise=False),
    )
    assert best > 0.5


def test_noise_and_seeded_factors_change_frames_but_not_their_length() -> None:
    settings = SynthesizeParams(size=32)
    factors = sample_factors(np.random.default_rng(0), settings)
    noisy, clean = render_clip(0, factors, settings), render_clip(0, factors, settings, noise=False)
    assert noisy.shape == clean.shape == (factors.n_frames, 32, 56, 3)
    assert 1.0 < np.abs(noisy.astype(int) - clean).mean() < 2 * settings.noise
    assert sum(factors.durations.values()) == factors.n_frames


def test_segments_share_the_frames_in_proportion_with_at_least_one_each() -> None:
    assert split_frames(40, {"a": 0.5, "b": 0.25, "c": 0.25}) == {"a": 20, "b": 10, "c": 10}
    assert split_frames(10, {"a": 0.98, "b": 0.01, "c": 0.01}) == {"a": 8, "b": 1, "c": 1}
    assert split_frames(3, {"a": 0.98, "b": 0.01, "c": 0.01}) == {"a": 1, "b": 1, "c": 1}
    with pytest.raises(ValueError, match="2 frames cannot hold 3 segments"):
        split_frames(2, {"a": 1.0, "b": 1.0, "c": 1.0})


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"min_frames": 40, "max_frames": 32}, "min_frames"),
        ({"classes": len(CLASSES) + 1}, "synthesize.classes"),
        ({"size": 63}, "synthesize.size"),
        ({"noise": -1}, "synthesize.noise"),
        ({"colour": 1}, "synthesize.colour"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(section: dict, key: str) -> None:
    with pytest.raises(ParamsError, match=key):
        parse_params({"synthesize": section})


def test_stage_writes_the_dataset_and_logs_counts_and_preview(
    tmp_path: Path, stage_env: dict[str, str], tracking_uri: str
) -> None:
    settings = TINY.model_dump() | {"classes": 2, "workers": 1}
    params = {"dataset": {"name": "synthetic-stage"}, "synthesize": settings}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "stages.synthesize", "--out", str(tmp_path / "data")]
    subprocess.run(command, cwd=tmp_path, env=stage_env, check=True, capture_output=True)

    assert len(list((tmp_path / "data" / VIDEO_DIR).glob("*.mp4"))) == 6
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("synthetic-stage")
    (run,) = client.search_runs([experiment.experiment_id], "tags.stage = 'synthesize'")
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert (metrics["classes"], metrics["train_videos"], metrics["test_videos"]) == (2, 4, 2)
    assert run.data.params["classes"] == "2" and run.data.params["size"] == "32"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [PREVIEW_FILE]

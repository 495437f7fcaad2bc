"""Frame extraction with decord on real MP4 files: content, failures, resumption, the stage."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import frame_index, level_frames
from mlflow.tracking import MlflowClient

from pipeline.config import DatasetParams, ExtractParams
from pipeline.data.adapters import load_dataset
from pipeline.data.extract import ExtractionError, extract_frames
from pipeline.data.frames import FrameStore
from pipeline.data.manifest import MANIFEST_COLUMNS, read_manifest
from pipeline.data.video_writer import write_mp4

DIVING48 = DatasetParams(format="diving48")


def _extract(root: Path, out: Path, **settings) -> object:
    params = ExtractParams(
        **{"short_side": 32, "max_frames": 8, "min_frames": 8, "workers": 1} | settings
    )
    return extract_frames(dataset=load_dataset(root=root, params=DIVING48), out=out, params=params)


def _set_range(root: Path, video: str, start: int | None, end: int | None) -> None:
    path = root / "Diving48_V2_train.json"
    entries = json.loads(path.read_text())
    for entry in entries:
        if entry["vid_name"] == video:
            entry["start_frame"], entry["end_frame"] = start, end
    path.write_text(json.dumps(entries))


def test_stored_frames_follow_range_resampling_and_short_side(diving48_dataset, tmp_path):
    root = diving48_dataset()
    write_mp4(root / "rgb" / "vtrain_0_0.mp4", level_frames(40))
    _set_range(root, "vtrain_0_0", 5, 35)
    write_mp4(root / "rgb" / "vtrain_0_1.mp4", level_frames(40))
    _set_range(root, "vtrain_0_1", None, None)
    _set_range(root, "vtrain_1_0", 10, 40)  # a range past the 24-frame video's end is clamped
    report = _extract(root, tmp_path / "frames")
    store = FrameStore(tmp_path / "frames")
    assert report.failures.empty and len(store) == 12

    ranged = store.frames("vtrain_0_0")
    assert isinstance(ranged, np.memmap) and ranged.dtype == np.uint8
    assert ranged.shape == (8, 32, 43, 3)  # short side 48 -> 32, aspect 4:3 kept
    assert list(frame_index(ranged)) == list(5 + np.linspace(0, 30, 8).round().astype(int))
    assert list(frame_index(store.frames("vtrain_0_1"))) == list(
        np.linspace(0, 39, 8).round().astype(int)
    )
    row = store.manifest.set_index("video_id").loc["vtrain_0_0"]
    assert (row["source_frames"], row["n_frames"], row["height"], row["width"]) == (31, 8, 32, 43)
    assert row["fps"] == pytest.approx(25.0)
    clamped = store.manifest.set_index("video_id").loc["vtrain_1_0"]
    assert (clamped["source_frames"], clamped["n_frames"]) == (14, 8)
    assert store.num_frames("vtrain_0_0") == 8


def test_the_frame_store_maps_each_video_once_and_pickles_without_the_maps(
    diving48_dataset, tmp_path
):
    _extract(diving48_dataset(), tmp_path / "frames")
    store = FrameStore(tmp_path / "frames")
    empty = len(pickle.dumps(store))
    ids = store.manifest["video_id"].tolist()
    assert all(store.frames(v) is store.frames(v) for v in ids)
    assert len(pickle.dumps(store)) == empty  # a spawned loader worker maps the files itself
    copy = pickle.loads(pickle.dumps(store))
    assert all(np.array_equal(copy.frames(v), store.frames(v)) for v in ids)
    few = FrameStore(tmp_path / "frames", max_mapped=2)
    assert all(np.array_equal(few.frames(v), store.frames(v)) for v in ids)
    assert list(few._mapped) == ids[-2:]  # the two read last stay mapped


def test_short_clips_keep_every_frame_at_native_size(diving48_dataset, tmp_path):
    root = diving48_dataset(frames=12)
    _extract(root, tmp_path / "frames", short_side=48, max_frames=32)
    frames = FrameStore(tmp_path / "frames").frames("vtest_1_0")
    assert frames.shape == (12, 48, 64, 3)
    assert list(frame_index(frames, offset=1)) == list(range(12))


@pytest.mark.parametrize(("short_side", "shape"), [(48, (120, 48)), (24, (60, 24)), (32, (80, 32))])
def test_narrow_videos_decode_to_the_right_shape(diving48_dataset, tmp_path, short_side, shape):
    # decord returns 4-channel frames or raises for 48- and 24-pixel-wide output.
    root = diving48_dataset()
    write_mp4(root / "rgb" / "vtrain_1_2.mp4", level_frames(24, height=120, width=48))
    _extract(root, tmp_path / "frames", short_side=short_side)
    frames = FrameStore(tmp_path / "frames").frames("vtrain_1_2")
    assert frames.shape == (8, *shape, 3)
    assert list(frame_index(frames)) == list(np.linspace(0, 23, 8).round().astype(int))
    assert np.ptp(frames[0].astype(int)) <= 2  # a flat grey frame stays flat: no channel mix-up


def _damage(root: Path, clip_mp4) -> dict[str, str]:
    videos = root / "rgb"
    rng = np.random.default_rng(0)
    (videos / "vtrain_0_0.mp4").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    whole = (videos / "vtrain_0_1.mp4").read_bytes()
    (videos / "vtrain_0_1.mp4").write_bytes(whole[: len(whole) // 2])
    (videos / "vtrain_1_0.mp4").write_bytes(b"")
    (videos / "vtrain_1_1.mp4").unlink()
    (videos / "vtrain_2_0.mp4").write_bytes(clip_mp4(frames=5).read_bytes())
    return {
        "vtrain_0_0": "corrupt",
        "vtrain_0_1": "truncated",
        "vtrain_1_0": "empty",
        "vtrain_1_1": "missing",
        "vtrain_2_0": "too_short",
    }


def test_unusable_videos_are_recorded_and_excluded(diving48_dataset, clip_mp4, tmp_path):
    root = diving48_dataset()
    damaged = _damage(root, clip_mp4)
    report = _extract(root, tmp_path / "frames")
    manifest = read_manifest(tmp_path / "frames" / "manifest.parquet")
    assert tuple(manifest.columns) == MANIFEST_COLUMNS and len(manifest) == 12
    failed = manifest[manifest["status"] != "ok"].set_index("video_id")
    assert failed["status"].to_dict() == damaged
    assert (failed["error"].str.len() > 0).all() and (failed["frames_file"] == "").all()
    assert "file ends inside its 'mdat' box" in failed.at["vtrain_0_1", "error"]
    assert "5 decodable frames, fewer than min_frames 8" in failed.at["vtrain_2_0", "error"]
    store = FrameStore(tmp_path / "frames")
    assert sorted(store.manifest["video_id"]) == sorted(set(manifest["video_id"]) - set(damaged))
    assert len(list((tmp_path / "frames" / "videos").glob("*.npy"))) == 7
    report.check(max_failed_fraction=0.5)  # 5 of 12 is under half
    with pytest.raises(ExtractionError, match="5 of 12 videos failed") as error:
        report.check(max_failed_fraction=0.4)
    for video, status in damaged.items():
        assert f"rgb/{video}.mp4: {status}: " in str(error.value)


def test_rerun_reuses_finished_videos_and_redoes_changed_ones(diving48_dataset, tmp_path):
    root, out = diving48_dataset(), tmp_path / "frames"
    first = _extract(root, out)
    arrays = {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.npy")}
    again = _extract(root, out)
    assert (first.decoded, again.decoded, again.reused) == (12, 0, 12)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.npy")} == arrays
    pd.testing.assert_frame_equal(first.manifest, again.manifest)

    write_mp4(root / "rgb" / "vtest_2_0.mp4", level_frames(30, 48, 64))  # a new version of one file
    assert _extract(root, out).decoded == 1
    assert FrameStore(out).manifest.set_index("video_id").at["vtest_2_0", "source_frames"] == 24

    changed = _extract(root, out, max_frames=10)  # other settings: everything is redone
    assert changed.decoded == 12 and FrameStore(out).frames("vtest_2_0").shape[0] == 10

    entries = json.loads((root / "Diving48_V2_test.json").read_text())
    (root / "Diving48_V2_test.json").write_text(json.dumps(entries[1:]))
    _extract(root, out, max_frames=10)  # a video dropped from the annotations leaves no files
    assert not list((out / "videos").glob(f"{entries[0]['vid_name']}.*"))


# ============ the stage as a process ============


def _stage(workdir: Path, name: str, root: Path, out: Path, **extract) -> list[str]:
    params = {
        "dataset": {"name": name, "format": "diving48", "root": str(root)},
        "extract": {"short_side": 32, "max_frames": 8, "min_frames": 8, "workers": 1} | extract,
    }
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return [
        sys.executable,
        "-m",
        "stages.extract_frames",
        "--dataset-root",
        str(root),
        "--out",
        str(out),
    ]


def _stage_runs(tracking_uri: str, name: str) -> list:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'extract_frames'")
    return sorted(runs, key=lambda run: run.info.start_time)


def test_stage_fails_past_the_failure_fraction_naming_the_files(
    diving48_dataset, clip_mp4, tmp_path, stage_env, tracking_uri
):
    root, out = diving48_dataset(), tmp_path / "frames"
    damaged = _damage(root, clip_mp4)
    command = _stage(tmp_path, "failing", root, out, max_failed_fraction=0.25)
    done = subprocess.run(command, cwd=tmp_path, env=stage_env, capture_output=True, text=True)
    assert done.returncode != 0
    assert (
        "ExtractionError: 5 of 12 videos failed, more than max_failed_fraction 0.25" in done.stderr
    )
    for video, status in damaged.items():
        assert f"rgb/{video}.mp4: {status}: " in done.stderr
    assert (read_manifest(out / "manifest.parquet")["status"] == "ok").sum() == 7
    (run,) = _stage_runs(tracking_uri, "failing")
    assert run.info.status == "FAILED"
    assert run.data.metrics["videos_failed"] == 5 and run.data.metrics["videos_ok"] == 7


def test_killed_stage_resumes_without_redoing_finished_videos(
    tmp_path, clip_mp4, stage_env, tracking_uri
):
    root, out = tmp_path / "many", tmp_path / "frames"
    (root / "rgb").mkdir(parents=True)
    clip = clip_mp4(frames=60).read_bytes()
    entries = [{"vid_name": f"v{i:02d}", "label": i % 2} for i in range(60)]
    for entry in entries:
        (root / "rgb" / f"{entry['vid_name']}.mp4").write_bytes(clip)
    (root / "Diving48_V2_train.json").write_text(json.dumps(entries[:50]))
    (root / "Diving48_V2_test.json").write_text(json.dumps(entries[50:]))
    (root / "Diving48_vocab.json").write_text(json.dumps([["a"], ["b"]]))
    command = _stage(tmp_path, "killed", root, out)

    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=stage_env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("videos/*.json")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)  # the stage, its forkserver and its workers at once
    process.wait()
    finished = {
        p.stem: (out / "videos" / f"{p.stem}.npy").stat().st_mtime_ns
        for p in out.glob("videos/*.json")
    }
    assert 0 < len(finished) < 60
    assert not (out / "manifest.parquet").exists()
    for array in out.glob("videos/*.npy"):  # whatever holds a final name is complete
        assert np.load(array, mmap_mode="r").shape == (8, 32, 43, 3)

    subprocess.run(command, cwd=tmp_path, env=stage_env, check=True, capture_output=True)
    store = FrameStore(out)
    assert len(store) == 60
    assert {v: (out / "videos" / f"{v}.npy").stat().st_mtime_ns for v in finished} == finished
    assert not [p for p in (out / "videos").iterdir() if ".tmp-" in p.name]
    killed, resumed = _stage_runs(tracking_uri, "killed")
    assert resumed.info.status == "FINISHED" and killed.info.status == "KILLED"  # closed on rerun
    assert resumed.data.metrics["videos_reused"] == len(finished)
    assert resumed.data.metrics["videos_decoded"] == 60 - len(finished)

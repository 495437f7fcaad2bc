"""Every adapter on a tiny dataset of real MP4 files in its layout, and every kind of bad input."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import CLASSES, TEST_PER_CLASS, TRAIN_PER_CLASS

from pipeline.config import DatasetParams, ExtractParams, ParamsError, parse_params
from pipeline.data.adapters import COLUMNS, DatasetError, load_dataset
from pipeline.data.extract import extract_frames
from pipeline.data.frames import FrameStore

N_VIDEOS = len(CLASSES) * (TRAIN_PER_CLASS + TEST_PER_CLASS)
LISTS = {"train_list": "train.txt", "test_list": "test.txt", "video_dir": "videos"}


def _check_table(dataset, names: list[str]) -> None:
    table = dataset.table
    assert tuple(table.columns) == COLUMNS
    assert dataset.classes == names
    assert table["video_id"].is_unique
    assert len(table) == N_VIDEOS
    assert (table["subset"] == "train").sum() == len(CLASSES) * TRAIN_PER_CLASS
    assert sorted(table["label"].unique()) == list(range(len(CLASSES)))
    assert all((dataset.root / p).is_file() for p in table["path"])


def _extract_all(dataset, tmp_path: Path) -> FrameStore:
    params = ExtractParams(short_side=32, max_frames=8, min_frames=8, workers=1)
    report = extract_frames(dataset=dataset, out=tmp_path / "frames", params=params)
    assert report.failures.empty, report.failures[["path", "status", "error"]]
    return FrameStore(tmp_path / "frames")


@pytest.mark.parametrize("fmt", ["diving48", "synthetic"])
def test_diving48_layout_is_read_and_decoded(fmt, diving48_dataset, tmp_path):
    root = diving48_dataset()
    dataset = load_dataset(root=root, params=DatasetParams(format=fmt, root=str(root)))
    _check_table(dataset, [" / ".join(c) for c in CLASSES])
    row = dataset.table.set_index("video_id").loc["vtrain_2_1"]
    assert (row["path"], row["label"], row["subset"]) == ("rgb/vtrain_2_1.mp4", 2, "train")
    assert (row["start_frame"], row["end_frame"]) == (0, 23)
    store = _extract_all(dataset, tmp_path)
    assert len(store) == N_VIDEOS
    assert store.frames("vtrain_2_1").shape == (8, 32, 43, 3)


@pytest.mark.parametrize("fmt", ["finegym", "mmaction"])
def test_video_lists_are_read_and_decoded(fmt, list_dataset, tmp_path):
    root = list_dataset(fmt)
    params = DatasetParams(format=fmt, root=str(root), classes_file="classes.txt", **LISTS)
    dataset = load_dataset(root=root, params=params)
    _check_table(dataset, [" / ".join(c) for c in CLASSES])
    expected = "train_1_0" if fmt == "finegym" else "class1/train_1_0"
    path = "videos/train_1_0.mp4" if fmt == "finegym" else "videos/class1/train_1_0.mp4"
    row = dataset.table.set_index("video_id").loc[expected]
    assert (row["path"], row["label"]) == (path, 1)
    assert pd.isna(row["start_frame"]) and pd.isna(row["end_frame"])
    store = _extract_all(dataset, tmp_path)
    assert sorted(store.manifest["video_id"]) == sorted(dataset.table["video_id"])


def test_video_list_without_classes_file_names_classes_by_number(list_dataset):
    root = list_dataset("finegym")
    dataset = load_dataset(root=root, params=DatasetParams(format="finegym", **LISTS))
    assert dataset.classes == ["0", "1", "2"]


def test_folders_layout_is_read_and_decoded(folders_dataset, tmp_path):
    dataset = load_dataset(root=folders_dataset, params=DatasetParams(format="folders"))
    _check_table(dataset, ["class_0", "class_1", "class_2"])
    row = dataset.table.set_index("video_id").loc["test/class_2/test_2_0"]
    assert (row["path"], row["label"], row["subset"]) == ("test/class_2/test_2_0.mp4", 2, "test")
    store = _extract_all(dataset, tmp_path)
    assert len(store) == N_VIDEOS


# ============ bad annotations ============


def _edit_json(path: Path, edit) -> None:
    entries = json.loads(path.read_text())
    edit(entries)
    path.write_text(json.dumps(entries))


def _load(root: Path, fmt: str = "diving48", **fields) -> None:
    load_dataset(root=root, params=DatasetParams(format=fmt, **fields))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda e: e[2].update(label=7), r"entry 2: label 7 is outside the class list \(3 classes"),
        (lambda e: e[1].update(label="Back"), "entry 1: label 'Back' is not an integer"),
        (lambda e: e[4].pop("label"), "entry 4: missing key 'label'"),
        (lambda e: e[0].pop("vid_name"), "entry 0: missing key 'vid_name'"),
        (
            lambda e: e[3].update(vid_name=e[0]["vid_name"]),
            "entry 3: duplicate video id 'vtrain_0_0'",
        ),
        (
            lambda e: e[5].update(vid_name="../../outside"),
            "entry 5: path 'rgb/../../outside.mp4' escapes",
        ),
        (
            lambda e: e[6].update(start_frame=5, end_frame=3),
            "entry 6: end_frame 3 is before start_frame 5",
        ),
        (lambda e: e.append([1, 2]), "entry 9: expected an object"),
    ],
)
def test_diving48_bad_entries_name_file_row_and_problem(diving48_dataset, edit, problem):
    root = diving48_dataset()
    _edit_json(root / "Diving48_V2_train.json", edit)
    with pytest.raises(DatasetError, match=problem) as error:
        _load(root)
    assert str(error.value).startswith(str(root / "Diving48_V2_train.json"))


def test_duplicate_id_across_train_and_test(diving48_dataset):
    root = diving48_dataset()
    _edit_json(root / "Diving48_V2_test.json", lambda e: e[0].update(vid_name="vtrain_1_1"))
    with pytest.raises(
        DatasetError,
        match=r"Diving48_V2_test.json: entry 0: duplicate video id "
        r"'vtrain_1_1' \(first at .*Diving48_V2_train.json: entry 4\)",
    ):
        _load(root)


def test_missing_annotation_file(diving48_dataset):
    root = diving48_dataset()
    (root / "Diving48_V2_test.json").unlink()
    with pytest.raises(DatasetError, match="Diving48_V2_test.json: annotation file not found"):
        _load(root)


def test_symlink_out_of_the_root_is_refused(diving48_dataset, tmp_path):
    root = diving48_dataset()
    outside = tmp_path / "elsewhere.mp4"
    video = root / "rgb" / "vtrain_0_1.mp4"
    outside.write_bytes(video.read_bytes())
    video.unlink()
    os.symlink(outside, video)
    with pytest.raises(
        DatasetError, match="entry 1: path 'rgb/vtrain_0_1.mp4' resolves to .*outside"
    ):
        _load(root)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("train_0_0", r"train.txt: line 4: expected '<video> <label>', got 'train_0_0'"),
        ("train_9_0 one", "train.txt: line 4: label 'one' is not an integer"),
        ("train_9_0 5", r"train.txt: line 4: label 5 is outside the class list \(3 classes"),
        ("train_0_0 0", "train.txt: line 4: duplicate video id 'train_0_0' .*line 1"),
        ("/etc/passwd 0", "train.txt: line 4: path '/etc/passwd.mp4' must be relative"),
        ("../../x 0", "train.txt: line 4: path '../../x.mp4' escapes the dataset root"),
    ],
)
def test_finegym_bad_lines(list_dataset, line, problem):
    root = list_dataset("finegym")
    lines = (root / "train.txt").read_text().splitlines()
    (root / "train.txt").write_text("\n".join(lines[:3] + [line] + lines[3:]) + "\n")
    with pytest.raises(DatasetError, match=problem):
        _load(root, "finegym", classes_file="classes.txt", **LISTS)


def test_mmaction_path_escaping_video_dir(list_dataset):
    root = list_dataset("mmaction")
    (root / "test.txt").write_text("../../secret.mp4 0\n")
    with pytest.raises(DatasetError, match="test.txt: line 1: path '../../secret.mp4' escapes"):
        _load(root, "mmaction", **LISTS)


def test_missing_video_list(list_dataset):
    root = list_dataset("mmaction")
    with pytest.raises(DatasetError, match="nope.txt: video list not found"):
        _load(root, "mmaction", train_list="nope.txt", test_list="test.txt")


def test_folders_test_class_without_train_folder(folders_dataset):
    (folders_dataset / "test" / "class_9").mkdir()
    with pytest.raises(DatasetError, match="class_9: class 'class_9' has no folder under"):
        _load(folders_dataset, "folders")


# ============ bad params ============


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"extract": {"short_side": "big"}}, "extract.short_side: Input should be a valid integer"),
        (
            {"extract": {"max_frames": 0}},
            "extract.max_frames: Input should be greater than or equal to 1",
        ),
        (
            {"extract": {"min_frames": 40}},
            "extract: min_frames must not exceed max_frames",
        ),
        (
            {"extract": {"max_failed_fraction": 1.5}},
            "extract.max_failed_fraction: Input should be less",
        ),
        ({"extract": {"shortside": 64}}, "extract.shortside: unknown key"),
        ({"dataset": {"format": "kinetics"}}, "dataset.format: Input should be 'synthetic'"),
        (
            {"dataset": {"format": "finegym"}},
            "train_list must name a list file when format is finegym",
        ),
        ({"splits": {"fractions": [0.1, 1.5]}}, r"fractions must lie in \(0, 1\], got 1.5"),
        (
            {"splits": {"validation_fraction": 1.0}},
            "splits.validation_fraction: Input should be less",
        ),
        ({"splits": {"open_world": {"novel": 2}}}, "splits.open_world.novel: unknown key"),
        ({"splits": {"seeds": [0, 1, 0]}}, r"seeds must not repeat a value, got \[0, 1, 0\]"),
        ({"splits": {"seeds": [-1]}}, "seeds must be non-negative"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(raw, "params.yaml")

"""Label splits: fractions, stratification, determinism, open world, validation, the stage."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.config import SplitsParams
from pipeline.data.frames import FrameStore
from pipeline.data.manifest import manifest_frame, write_manifest
from pipeline.data.splits import (
    evaluation_set,
    labeled_test_clips,
    load_split,
    make_splits,
    monitoring_set,
    split_name,
)

CLASSES = ["back tuck", "back pike", "front tuck", "front pike"]
TRAIN = {0: 20, 1: 10, 2: 3, 3: 7}  # usable training videos per class


def _row(video_id: str, label: int, subset: str, status: str = "ok") -> dict:
    ok = status == "ok"
    return {
        "video_id": video_id, "path": f"rgb/{video_id}.mp4", "label": label, "subset": subset,
        "start_frame": None, "end_frame": None, "status": status,
        "error": "" if ok else "file not found", "n_frames": 8 if ok else 0,
        "source_frames": 30 if ok else 0, "height": 32 if ok else 0, "width": 43 if ok else 0,
        "fps": 25.0, "frames_file": f"videos/{video_id}.npy" if ok else "",
    }  # fmt: skip


@pytest.fixture
def manifest() -> pd.DataFrame:
    rows = [_row(f"c{c}_train{i:02d}", c, "train") for c, n in TRAIN.items() for i in range(n)]
    rows += [_row(f"c{c}_test{i}", c, "test") for c in TRAIN for i in range(2)]
    rows += [_row("c0_broken", 0, "train", "corrupt"), _row("c2_gone", 2, "train", "missing")]
    return manifest_frame(rows)


def _split(manifest, out: Path, **params):
    params.setdefault("validation_fraction", 0.0)  # the counts below are those without one
    sizes = make_splits(manifest=manifest, classes=CLASSES, params=SplitsParams(**params), out=out)
    return sizes


def _per_class(table: pd.DataFrame) -> dict[int, int]:
    return table.groupby("label").size().to_dict()


def test_split_names_follow_python_float_text():
    assert split_name(0.1, 0) == "frac0.1_seed0"
    assert split_name(0.05, 2) == "frac0.05_seed2"
    assert split_name(1, 1) == "frac1.0_seed1"


def test_fractions_are_stratified_with_at_least_one_label_per_class(manifest, tmp_path):
    sizes = _split(manifest, tmp_path / "s", fractions=[0.05, 0.2, 0.5], seeds=[0])
    expected = {
        0.05: {0: 1, 1: 1, 2: 1, 3: 1},  # 5 % of 20 is 1; smaller classes still get one
        0.2: {0: 4, 1: 2, 2: 1, 3: 1},  # 0.6 and 1.4 round to 1
        0.5: {0: 10, 1: 5, 2: 2, 3: 4},  # halves round up: 1.5 -> 2, 3.5 -> 4
    }
    usable = set(manifest.loc[(manifest.status == "ok") & (manifest.subset == "train"), "video_id"])
    for fraction, counts in expected.items():
        split = load_split(tmp_path / "s" / f"{split_name(fraction, 0)}.parquet")
        assert _per_class(split.labeled) == counts
        assert sizes[f"{split_name(fraction, 0)}.labeled"] == sum(counts.values())
        ids = set(split.labeled.video_id) | set(split.unlabeled.video_id)
        assert ids == usable and len(split.labeled) + len(split.unlabeled) == len(usable)
        labels = manifest.set_index("video_id").loc[split.labeled.video_id, "label"]
        assert list(labels) == list(split.labeled.label)  # no open world: model label = dataset
        assert split.classes == CLASSES and split.dataset_labels == [0, 1, 2, 3]
    small = load_split(tmp_path / "s" / "frac0.05_seed0.parquet").labeled.video_id
    large = load_split(tmp_path / "s" / "frac0.2_seed0.parquet").labeled.video_id
    assert set(small) <= set(large)  # one seed: a smaller budget's labels are kept


def test_files_are_plain_and_unlabeled_rows_carry_no_label(manifest, tmp_path):
    _split(manifest, tmp_path / "s", fractions=[0.2], seeds=[1])
    table = pd.read_parquet(tmp_path / "s" / "frac0.2_seed1.parquet")
    assert list(table.columns) == ["video_id", "subset", "label"]
    assert table.loc[table.subset == "unlabeled", "label"].isna().all()
    assert table.loc[table.subset == "labeled", "label"].notna().all()
    labeled = (tmp_path / "s" / "frac0.2_seed1.labeled.txt").read_text().splitlines()
    first = table[table.subset == "labeled"].iloc[0]
    assert labeled[0] == f"rgb/{first.video_id}.mp4 {first.label}"
    unlabeled = (tmp_path / "s" / "frac0.2_seed1.unlabeled.txt").read_text().splitlines()
    assert len(unlabeled) == (table.subset == "unlabeled").sum()
    assert all(line.startswith("rgb/") and " " not in line for line in unlabeled)


def test_same_seed_same_bytes_other_seed_other_labels(manifest, tmp_path):
    params = {"fractions": [0.1, 0.2], "seeds": [0, 1], "validation_fraction": 0.2}
    _split(manifest, tmp_path / "a", **params)
    _split(manifest, tmp_path / "b", **params)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 2 * 2 * 3 + 2
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    seed0 = load_split(tmp_path / "a" / "frac0.2_seed0.parquet").labeled
    seed1 = load_split(tmp_path / "a" / "frac0.2_seed1.parquet").labeled
    assert set(seed0.video_id) != set(seed1.video_id)
    assert _per_class(seed0) == _per_class(seed1)


def test_open_world_novel_classes_are_unlabeled_only(manifest, tmp_path):
    _split(manifest, tmp_path / "s", fractions=[0.5], seeds=[0], open_world={"novel_classes": 2})
    description = json.loads((tmp_path / "s" / "classes.json").read_text())
    novel = description["novel_dataset_labels"]
    known = description["dataset_labels"]
    assert len(novel) == 2 and sorted(novel + known) == [0, 1, 2, 3]
    assert description["classes"] == [CLASSES[c] for c in known]
    split = load_split(tmp_path / "s" / "frac0.5_seed0.parquet")
    dataset_label = manifest.set_index("video_id")["label"]
    assert set(dataset_label[split.labeled.video_id]) == set(known)
    assert set(split.labeled.label) == set(range(len(known)))  # model classes 0..known-1
    unlabeled = dataset_label[split.unlabeled.video_id]
    for c in novel:  # every usable training clip of a novel class is unlabeled
        assert (unlabeled == c).sum() == TRAIN[c]

    write_manifest(manifest, tmp_path / "frames" / "manifest.parquet")
    (tmp_path / "frames" / "classes.json").write_text(json.dumps(CLASSES))
    store = FrameStore(tmp_path / "frames")
    test = evaluation_set(store, tmp_path / "s" / "classes.json", subset="test")
    assert len(test) == 2 * len(known)
    assert list(dataset_label[test.video_id].map(known.index)) == list(test.label)
    assert evaluation_set(store, tmp_path / "s" / "frac0.5_seed0.parquet").equals(test)
    assert labeled_test_clips(store, tmp_path / "s" / "classes.json").equals(test)


def test_validation_is_held_out_from_every_split(manifest, tmp_path):
    _split(manifest, tmp_path / "s", fractions=[0.1, 0.5], seeds=[0, 1], validation_fraction=0.3)
    validation = pd.read_parquet(tmp_path / "s" / "validation.parquet")
    assert _per_class(validation) == {0: 6, 1: 3, 2: 1, 3: 2}  # 0.9 -> 1, 2.1 -> 2
    for name in ("frac0.1_seed0", "frac0.5_seed1"):
        split = load_split(tmp_path / "s" / f"{name}.parquet")
        used = set(split.labeled.video_id) | set(split.unlabeled.video_id)
        assert not used & set(validation.video_id)
        assert len(used) + len(validation) == sum(TRAIN.values())
        assert split.validation.equals(validation)
    write_manifest(manifest, tmp_path / "frames" / "manifest.parquet")
    (tmp_path / "frames" / "classes.json").write_text(json.dumps(CLASSES))
    held = evaluation_set(
        FrameStore(tmp_path / "frames"), tmp_path / "s" / "frac0.5_seed1.parquet", "validation"
    )
    assert sorted(held.video_id) == sorted(validation.video_id)
    monitored, subset = monitoring_set(split)
    assert subset == "validation" and sorted(monitored.video_id) == sorted(validation.video_id)


def test_the_default_hold_out_keeps_a_label_per_class_at_five_percent(tmp_path):
    # the default benchmark's 50 training clips per class, and classes of 1 to 3 clips
    counts = {0: 50, 1: 3, 2: 2, 3: 1}
    rows = [_row(f"c{c}_train{i:02d}", c, "train") for c, n in counts.items() for i in range(n)]
    defaults = SplitsParams()
    assert defaults.validation_fraction == 0.1
    make_splits(manifest=manifest_frame(rows), classes=CLASSES, params=defaults, out=tmp_path / "s")
    validation = pd.read_parquet(tmp_path / "s" / "validation.parquet")
    assert _per_class(validation) == {0: 5}  # 0.3, 0.2 and 0.1 clips round to none
    # of class 0's 45 remaining clips: 2.25, 4.5 and 9 labels, rounded half up
    for fraction, labeled in zip(defaults.fractions, (2, 5, 9), strict=True):
        split = load_split(tmp_path / "s" / f"{split_name(fraction, 0)}.parquet")
        assert _per_class(split.labeled) == {0: labeled, 1: 1, 2: 1, 3: 1}


def test_without_same_class_validation_pairs_monitoring_reads_the_labeled_clips(manifest, tmp_path):
    _split(manifest, tmp_path / "s", fractions=[0.5], seeds=[0])
    split = load_split(tmp_path / "s" / "frac0.5_seed0.parquet")
    monitored, subset = monitoring_set(split)
    assert subset == "train" and monitored.equals(split.labeled)
    # at most one clip per class (1 and 0.5 of 20 and 10 round to one): no pair to verify
    _split(manifest, tmp_path / "one", fractions=[0.5], seeds=[0], validation_fraction=0.05)
    split = load_split(tmp_path / "one" / "frac0.5_seed0.parquet")
    assert split.validation.label.tolist() == [0, 1] and monitoring_set(split)[1] == "train"


def test_impossible_requests_are_refused(manifest, tmp_path):
    with pytest.raises(ValueError, match="novel_classes \\(4\\) must leave at least one"):
        _split(manifest, tmp_path / "s", open_world={"novel_classes": 4})
    only_test = manifest[~((manifest.label == 1) & (manifest.subset == "train"))]
    with pytest.raises(
        ValueError, match="classes without any usable training video: 1 \\(back pike\\)"
    ):
        _split(only_test, tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_stage_writes_splits_and_logs_sizes(manifest, tmp_path, stage_env, tracking_uri):
    write_manifest(manifest, tmp_path / "frames" / "manifest.parquet")
    (tmp_path / "frames" / "classes.json").write_text(json.dumps(CLASSES))
    params = {"dataset": {"name": "splits-stage"}, "splits": {"fractions": [0.1], "seeds": [0, 1]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "stages.make_splits", "--manifest", "frames/manifest.parquet",
               "--classes", "frames/classes.json", "--out", "splits"]  # fmt: skip
    subprocess.run(command, cwd=tmp_path, env=stage_env, check=True, capture_output=True)
    split = load_split(tmp_path / "splits" / "frac0.1_seed1.parquet")
    assert _per_class(split.labeled) == {0: 2, 1: 1, 2: 1, 3: 1}
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("splits-stage")
    (run,) = client.search_runs([experiment.experiment_id], "tags.stage = 'make_splits'")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["videos.frac0.1_seed1.labeled"] == 5
    # the default hold-out: 10 % of 20, 10, 3 and 7 clips, rounded half up
    assert run.data.metrics["videos.validation"] == 2 + 1 + 0 + 1
    assert run.data.metrics["videos.frac0.1_seed1.unlabeled"] == sum(TRAIN.values()) - 5 - 4

"""Label splits: which training videos keep their label, for each labeled fraction and seed.

Output folder:
    frac<fraction>_seed<seed>.parquet      video_id, subset (labeled/unlabeled), label
                                           (model class index; null for unlabeled rows)
    frac<fraction>_seed<seed>.labeled.txt  `<path> <label>` lines, path relative to the dataset
    frac<fraction>_seed<seed>.unlabeled.txt `<path>` lines
    validation.parquet                     video_id, label: held out from every split
    classes.json                           the model's classes and their dataset label numbers

Per class, the training videos that extracted cleanly are shuffled once per split seed and
the first round(fraction x count) (at least one) are labeled, so for one seed the labeled set
of a smaller fraction is inside that of a larger one. The validation share is drawn first,
from each known class, by `validation_seed` alone, so every fraction and seed tunes on the
same videos; a class always keeps at least one training video for its label.
In the open-world protocol, `novel_classes` classes drawn from `open_world.seed` get no labels:
their training videos are all unlabeled and the model knows only the other classes.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import atomic_output
from pipeline.config import SplitsParams
from pipeline.data.frames import FrameStore
from pipeline.data.manifest import OK

CLASSES_FILE = "classes.json"
VALIDATION_FILE = "validation.parquet"


@dataclass(frozen=True)
class LabelSplit:
    labeled: pd.DataFrame  # video_id, label (model class index)
    unlabeled: pd.DataFrame  # video_id
    classes: list[str]  # the model's classes; label n is classes[n]
    dataset_labels: list[int]  # dataset label number of each model class
    validation: pd.DataFrame  # video_id, label (model class index); empty without a share


def split_name(fraction: float, seed: int) -> str:
    """The file stem of a split: frac0.1_seed0 for fraction 0.1, seed 0."""
    return f"frac{float(fraction)}_seed{seed}"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def shuffled(ids: list[str], *entropy: int) -> list[str]:
    """`ids` in the order that the integers `entropy` draw: the same order for the same ones."""
    order = np.random.default_rng(list(entropy)).permutation(len(ids))
    return [ids[i] for i in order]


def hold_out_validation(
    by_class: dict[int, list[str]], fraction: float, seed: int
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Per class, the videos held out for validation and the rest, both sorted:
    round(fraction x count) of each class (leaving it at least one), drawn by `seed` alone."""
    held_out, rest = {}, {}
    for label, ids in by_class.items():
        count = min(_round_half_up(fraction * len(ids)), len(ids) - 1)
        order = shuffled(ids, seed, label)
        held_out[label], rest[label] = sorted(order[:count]), sorted(order[count:])
    return held_out, rest


def _known_labels(n_classes: int, params: SplitsParams) -> tuple[list[int], list[int]]:
    novel_count = params.open_world.novel_classes
    if novel_count >= n_classes:
        raise ValueError(
            f"splits.open_world.novel_classes ({novel_count}) must leave at least one of the "
            f"{n_classes} classes known"
        )
    rng = np.random.default_rng(params.open_world.seed)
    novel = sorted(int(c) for c in rng.choice(n_classes, size=novel_count, replace=False))
    return [c for c in range(n_classes) if c not in novel], novel


def _write_split(folder: Path, name: str, labeled: list, unlabeled: list[str], paths: dict) -> None:
    ids = [vid for vid, _ in labeled] + unlabeled
    table = pd.DataFrame(
        {
            "video_id": pd.Series(ids, dtype="str"),
            "subset": pd.Series(
                ["labeled"] * len(labeled) + ["unlabeled"] * len(unlabeled), dtype="str"
            ),
            "label": pd.Series(
                [lab for _, lab in labeled] + [None] * len(unlabeled), dtype="Int64"
            ),
        }
    )
    table.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / f"{name}.labeled.txt").write_text(
        "".join(f"{paths[v]} {lab}\n" for v, lab in labeled)
    )
    (folder / f"{name}.unlabeled.txt").write_text("".join(f"{paths[v]}\n" for v in unlabeled))


def training_videos_by_class(manifest: pd.DataFrame, n_classes: int) -> dict[int, list[str]]:
    """The training videos that extracted cleanly, by dataset label, sorted by video id."""
    train = manifest[(manifest["status"] == OK) & (manifest["subset"] == "train")]
    train = train.sort_values("video_id")
    return {c: list(train.loc[train["label"] == c, "video_id"]) for c in range(n_classes)}


def make_splits(
    manifest: pd.DataFrame, classes: list[str], params: SplitsParams, out: str | Path
) -> dict[str, int]:
    """Write every fraction x seed split of the manifest's usable training videos to `out`.

    Returns the sizes written ("<split>.labeled", "<split>.unlabeled", "validation").
    """
    paths = dict(zip(manifest["video_id"], manifest["path"], strict=True))
    known, novel = _known_labels(len(classes), params)
    by_class = training_videos_by_class(manifest, len(classes))
    empty = [f"{c} ({classes[c]})" for c in known if not by_class[c]]
    if empty:
        raise ValueError(f"classes without any usable training video: {', '.join(empty)}")
    model_label = {c: i for i, c in enumerate(known)}
    held_out, pools = hold_out_validation(
        {c: by_class[c] for c in known}, params.validation_fraction, params.validation_seed
    )
    validation = [(vid, model_label[c]) for c in known for vid in held_out[c]]
    novel_ids = sorted(vid for c in novel for vid in by_class[c])
    sizes = {"validation": len(validation)}
    with atomic_output(out) as folder:
        folder.mkdir()
        for fraction in params.fractions:
            for seed in params.seeds:
                labeled, unlabeled = [], list(novel_ids)
                for c in known:
                    order = shuffled(pools[c], seed, c)
                    count = max(1, _round_half_up(fraction * len(order)))
                    labeled += [(vid, model_label[c]) for vid in sorted(order[:count])]
                    unlabeled += order[count:]
                name = split_name(fraction, seed)
                _write_split(folder, name, labeled, sorted(unlabeled), paths)
                sizes[f"{name}.labeled"], sizes[f"{name}.unlabeled"] = len(labeled), len(unlabeled)
        pd.DataFrame(
            {
                "video_id": pd.Series([vid for vid, _ in validation], dtype="str"),
                "label": pd.Series([lab for _, lab in validation], dtype="int64"),
            }
        ).to_parquet(folder / VALIDATION_FILE, index=False)
        description = {
            "classes": [classes[c] for c in known],
            "dataset_labels": known,
            "novel_classes": [classes[c] for c in novel],
            "novel_dataset_labels": novel,
        }
        (folder / CLASSES_FILE).write_text(json.dumps(description, indent=1) + "\n")
    return sizes


def _read_classes(folder: Path) -> dict:
    path = folder / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split classes not found (run the make_splits stage)")
    return json.loads(path.read_text())


def load_split(path: str | Path) -> LabelSplit:
    """Read one split file (`<splits>/frac0.1_seed0.parquet`) with the classes beside it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label split not found")
    table = pd.read_parquet(path)
    if list(table.columns) != ["video_id", "subset", "label"]:
        raise ValueError(
            f"{path}: expected columns video_id, subset, label; got {list(table.columns)}"
        )
    description = _read_classes(path.parent)
    labeled = table[table["subset"] == "labeled"]
    return LabelSplit(
        labeled=labeled[["video_id", "label"]].astype({"label": "int64"}).reset_index(drop=True),
        unlabeled=table.loc[table["subset"] == "unlabeled", ["video_id"]].reset_index(drop=True),
        classes=description["classes"],
        dataset_labels=description["dataset_labels"],
        validation=pd.read_parquet(path.parent / VALIDATION_FILE),
    )


def monitoring_set(split: LabelSplit) -> tuple[pd.DataFrame, str]:
    """video_id, label of the clips that monitoring during training reads, and their subset:
    the validation hold-out, or the labeled clips when it holds no two clips of one class
    (none at all, or a tiny dataset's one per class: verification needs same-class pairs).
    Never the test set."""
    if split.validation["label"].duplicated().any():
        return split.validation.astype({"label": "int64"}).reset_index(drop=True), "validation"
    return split.labeled.reset_index(drop=True), "train"


def labeled_test_clips(store: FrameStore, classes_path: str | Path) -> pd.DataFrame:
    """video_id, label (model class index) of the test videos of the model's classes.

    The only reader of test labels: the evaluate step calls it (directly or through
    `evaluation_set`), nothing else does (tests/test_protocol.py checks it)."""
    dataset_labels = _read_classes(Path(classes_path).parent)["dataset_labels"]
    test = store.manifest[store.manifest["subset"] == "test"]
    model_label = {d: i for i, d in enumerate(dataset_labels)}
    test = test[test["label"].isin(model_label)]
    table = pd.DataFrame({"video_id": test["video_id"], "label": test["label"].map(model_label)})
    return table.astype({"label": "int64"}).sort_values("video_id").reset_index(drop=True)


def evaluation_set(store: FrameStore, split_path: str | Path, subset: str = "test") -> pd.DataFrame:
    """video_id, label (model class index) of the test or validation videos of known classes,
    for the evaluate step."""
    if subset == "test":
        return labeled_test_clips(store, split_path)
    if subset != "validation":
        raise ValueError(f"subset must be 'test' or 'validation', got {subset!r}")
    validation = pd.read_parquet(Path(split_path).parent / VALIDATION_FILE)
    table = validation[validation["video_id"].isin(store.manifest["video_id"])]
    return table.astype({"label": "int64"}).sort_values("video_id").reset_index(drop=True)

"""Diving48 V2 release layout (also the layout of the generated synthetic benchmark).

    <root>/Diving48_V2_train.json   [{"vid_name": str, "label": int,
    <root>/Diving48_V2_test.json      "start_frame": int, "end_frame": int}, ...]
    <root>/Diving48_vocab.json      [["Back", "15som", "05Twis", "FREE"], ...] one per class
    <root>/rgb/<vid_name>.mp4

A class name is its phases joined by " / ". start_frame and end_frame are optional and both
belong to the clip; an end_frame past the last decodable frame means "to the end", so a file
that counts end_frame as the frame count instead reads the same.
"""

import json
from pathlib import Path

from pipeline.data.adapters.dataset import Dataset, Row, build_dataset, check_path, located

TRAIN_FILE = "Diving48_V2_train.json"
TEST_FILE = "Diving48_V2_test.json"
VOCAB_FILE = "Diving48_vocab.json"
VIDEO_DIR = "rgb"
VIDEO_SUFFIX = ".mp4"


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise located(path, None, "annotation file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise located(path, None, f"not valid JSON: {error}") from None


def read_vocab(path: Path) -> list[str]:
    """Class names: each vocabulary entry's phase strings joined by ' / '."""
    vocab = _read_json(path)
    if not isinstance(vocab, list) or not vocab:
        raise located(path, None, "expected a non-empty JSON list with one entry per class")
    names = []
    for index, entry in enumerate(vocab):
        if isinstance(entry, str):
            entry = [entry]
        if not isinstance(entry, list) or not entry or not all(isinstance(p, str) for p in entry):
            raise located(
                path, f"entry {index}", f"expected a list of phase strings, got {entry!r}"
            )
        names.append(" / ".join(entry))
    return names


def _frame(entry: dict, key: str, source: str, row: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise located(source, row, f"{key} {value!r} is not a non-negative integer")
    return value


def _read_annotations(root: Path, name: str, subset: str) -> list[Row]:
    path = root / name
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise located(path, None, f"expected a JSON list of videos, got {type(entries).__name__}")
    rows = []
    for index, entry in enumerate(entries):
        row = f"entry {index}"
        if not isinstance(entry, dict):
            raise located(path, row, f"expected an object, got {entry!r}")
        for key in ("vid_name", "label"):
            if key not in entry:
                raise located(path, row, f"missing key {key!r}")
        vid_name = entry["vid_name"]
        if not isinstance(vid_name, str) or not vid_name.strip():
            raise located(path, row, f"vid_name {vid_name!r} is not a non-empty string")
        start = _frame(entry, "start_frame", str(path), row)
        end = _frame(entry, "end_frame", str(path), row)
        if start is not None and end is not None and end < start:
            raise located(path, row, f"end_frame {end} is before start_frame {start}")
        video = check_path(root, f"{VIDEO_DIR}/{vid_name}{VIDEO_SUFFIX}", str(path), row)
        rows.append(Row(vid_name, video, entry["label"], subset, str(path), row, start, end))
    return rows


def read_diving48(root: Path) -> Dataset:
    """Read the Diving48 V2 annotations under `root`."""
    classes = read_vocab(root / VOCAB_FILE)
    rows = _read_annotations(root, TRAIN_FILE, "train")
    rows += _read_annotations(root, TEST_FILE, "test")
    return build_dataset(root, rows, classes)

"""Datasets described by plain-text video lists, one video per line.

FineGym element lists: `<clip_id> <label>`; the video is `<video_dir>/<clip_id><video_suffix>`.
mmaction2 video lists: `<relative/path> <label>`; the path is relative to `<video_dir>`.
Both take their list files from `dataset.train_list` / `dataset.test_list` and their class
names from `dataset.classes_file` (one name per line) when given, else the label numbers.
Blank lines and lines starting with `#` are skipped; a path may contain spaces (the label is
the last field).
"""

from pathlib import Path, PurePosixPath

from pipeline.config import DatasetParams
from pipeline.data.adapters.dataset import Dataset, Row, build_dataset, check_path, located


def read_classes_file(path: Path) -> list[str]:
    """One class name per line; line n (0-based, blank lines refused) names label n."""
    if not path.is_file():
        raise located(path, None, "classes file not found")
    names = path.read_text().splitlines()
    for number, name in enumerate(names, start=1):
        if not name.strip():
            raise located(path, f"line {number}", "empty class name")
    if not names:
        raise located(path, None, "no class names")
    return [name.strip() for name in names]


def _lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, first field, label field) of every entry line."""
    if not path.is_file():
        raise located(path, None, "video list not found")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.rsplit(maxsplit=1)
        if len(fields) != 2:
            raise located(path, f"line {number}", f"expected '<video> <label>', got {text!r}")
        entries.append((number, fields[0], fields[1]))
    return entries


def _read_list(
    root: Path, name: str, subset: str, params: DatasetParams, finegym: bool
) -> list[Row]:
    path = root / name
    rows = []
    for number, video, label_field in _lines(path):
        row = f"line {number}"
        try:
            label = int(label_field)
        except ValueError:
            raise located(path, row, f"label {label_field!r} is not an integer") from None
        relative = f"{video}{params.video_suffix}" if finegym else video
        # The entry must stay inside video_dir, and video_dir inside the root.
        check_path(root / params.video_dir, relative, str(path), row)
        full = check_path(
            root, (PurePosixPath(params.video_dir) / relative).as_posix(), str(path), row
        )
        video_id = video if finegym else PurePosixPath(video).with_suffix("").as_posix()
        rows.append(Row(video_id, full, label, subset, str(path), row))
    return rows


def read_video_list(root: Path, params: DatasetParams) -> Dataset:
    """Read a FineGym (`format: finegym`) or mmaction2 (`format: mmaction`) video list dataset."""
    finegym = params.format == "finegym"
    rows = _read_list(root, params.train_list, "train", params, finegym)
    rows += _read_list(root, params.test_list, "test", params, finegym)
    if params.classes_file:
        classes = read_classes_file(root / params.classes_file)
    else:
        labels = [r.label for r in rows if r.label >= 0]
        classes = [str(n) for n in range(max(labels, default=-1) + 1)]
    return build_dataset(root, rows, classes)

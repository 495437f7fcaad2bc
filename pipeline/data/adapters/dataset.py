"""The one table every dataset adapter yields, and the checks every adapter's rows pass.

Whatever the source layout, the rest of the pipeline sees a `Dataset`: one row per video with
video_id, path (relative to the dataset root), label (index into `classes`), subset
(train/test) and an optional start/end frame. Problems in the annotations are reported as a
`DatasetError` that names the file, the row and what is wrong, before any video is decoded.
"""

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

COLUMNS = ("video_id", "path", "label", "subset", "start_frame", "end_frame")


class DatasetError(ValueError):
    """The dataset's annotations or layout are unusable; the message names file, row, problem."""


def located(source: str | Path, row: int | str | None, problem: str) -> DatasetError:
    """A DatasetError reading `<file>: <row>: <problem>` (row is a line number or JSON index)."""
    where = f"{source}: {row}" if row is not None else f"{source}"
    return DatasetError(f"{where}: {problem}")


@dataclass(frozen=True)
class Row:
    """One annotated video, with where it was read from for error messages."""

    video_id: str
    path: str
    label: int
    subset: str
    source: str
    row: int | str | None
    start_frame: int | None = None
    end_frame: int | None = None  # inclusive: frames start_frame..end_frame make the clip


@dataclass(frozen=True)
class Dataset:
    """The annotated videos of one dataset; `table` columns are COLUMNS."""

    root: Path
    table: pd.DataFrame
    classes: list[str]


def check_label(value: object, classes: int, source: str, row: int | str | None) -> int:
    """A label must be an integer in 0..classes-1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise located(source, row, f"label {value!r} is not an integer")
    if value < 0:
        raise located(source, row, f"label {value} is negative")
    if value >= classes:
        raise located(
            source,
            row,
            f"label {value} is outside the class list ({classes} classes: 0..{classes - 1})",
        )
    return value


def check_path(root: Path, path: str, source: str, row: int | str | None) -> str:
    """Refuse absolute paths, `..` parts and symlinks that lead out of the dataset root."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or Path(path).is_absolute():
        raise located(source, row, f"path {path!r} must be relative to the dataset root")
    if ".." in pure.parts:
        raise located(source, row, f"path {path!r} escapes the dataset root (contains '..')")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise located(
            source, row, f"path {path!r} resolves to {resolved}, outside the dataset root {root}"
        )
    return pure.as_posix()


def build_dataset(root: Path, rows: list[Row], classes: list[str]) -> Dataset:
    """Check ids are unique and labels known, then assemble the table."""
    seen: dict[str, Row] = {}
    for item in rows:
        check_label(item.label, len(classes), item.source, item.row)
        if item.video_id in seen:
            first = seen[item.video_id]
            raise located(
                item.source,
                item.row,
                f"duplicate video id {item.video_id!r} (first at {first.source}: {first.row})",
            )
        seen[item.video_id] = item
    if not any(item.subset == "train" for item in rows):
        raise DatasetError(f"{root}: the dataset has no training videos")
    table = pd.DataFrame(
        {
            "video_id": pd.Series([r.video_id for r in rows], dtype=str),
            "path": pd.Series([r.path for r in rows], dtype=str),
            "label": pd.Series([r.label for r in rows], dtype="int64"),
            "subset": pd.Series([r.subset for r in rows], dtype=str),
            "start_frame": pd.Series([r.start_frame for r in rows], dtype="Int64"),
            "end_frame": pd.Series([r.end_frame for r in rows], dtype="Int64"),
        }
    )
    return Dataset(root=root, table=table, classes=list(classes))

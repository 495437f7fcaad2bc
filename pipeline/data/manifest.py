"""The manifest of an extraction: one row per annotated video, extracted or not.

Columns: the dataset table's (video_id, path, label, subset, start_frame, end_frame), then
status ("ok" or the failure kind), error ("" when ok), n_frames (stored), source_frames
(decodable frames of the clip's range), height, width (stored), fps (of the source) and
frames_file (the .npy path relative to the frames folder, "" unless ok).
"""

from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_output

MANIFEST_FILE = "manifest.parquet"
CLASSES_FILE = "classes.json"
VIDEOS_DIR = "videos"
OK = "ok"
FAILURE_STATUSES = ("missing", "empty", "corrupt", "truncated", "too_short")

_DTYPES = {
    "video_id": "str",
    "path": "str",
    "label": "int64",
    "subset": "str",
    "start_frame": "Int64",
    "end_frame": "Int64",
    "status": "str",
    "error": "str",
    "n_frames": "int64",
    "source_frames": "int64",
    "height": "int64",
    "width": "int64",
    "fps": "float64",
    "frames_file": "str",
}
MANIFEST_COLUMNS = tuple(_DTYPES)


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts with every manifest column) as a typed table in video_id order."""
    table = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(_DTYPES)
    return table.sort_values("video_id", kind="stable").reset_index(drop=True)


def write_manifest(table: pd.DataFrame, path: Path) -> None:
    """Write the manifest atomically as Parquet."""
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest, checking it has every column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (run the extract_frames stage)")
    table = pd.read_parquet(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a frames manifest, missing columns {missing}")
    return table.astype(_DTYPES)

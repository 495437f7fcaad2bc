"""Dataset adapters: read a dataset's own layout into one `Dataset` table.

Formats (params.yaml `dataset.format`): `diving48` and `synthetic` (the generated benchmark
is written in the Diving48 V2 layout), `finegym` and `mmaction` (plain-text video lists) and
`folders` (a folder per class). Each module's docstring gives its exact layout.
"""

from pathlib import Path

from pipeline.config import DatasetParams
from pipeline.data.adapters.dataset import COLUMNS, Dataset, DatasetError
from pipeline.data.adapters.diving48 import read_diving48
from pipeline.data.adapters.folders import read_folders
from pipeline.data.adapters.video_list import read_video_list

__all__ = ["COLUMNS", "Dataset", "DatasetError", "load_dataset"]


def load_dataset(root: str | Path, params: DatasetParams) -> Dataset:
    """Read the dataset under `root` in the layout `params.format` names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    if params.format in ("diving48", "synthetic"):
        return read_diving48(root)
    if params.format in ("finegym", "mmaction"):
        return read_video_list(root, params)
    return read_folders(root, params.video_suffix)

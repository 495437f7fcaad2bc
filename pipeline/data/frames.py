"""Read extracted frames: the trainers' view of the extract_frames output folder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.manifest import CLASSES_FILE, MANIFEST_FILE, OK, read_manifest


class FrameStore:
    """The videos that extracted cleanly, their labels and their memory-mapped frames."""

    def __init__(self, root: str | Path, max_mapped: int = 4096) -> None:
        self.root = Path(root)
        table = read_manifest(self.root / MANIFEST_FILE)
        self.manifest: pd.DataFrame = table[table["status"] == OK].reset_index(drop=True)
        self.classes: list[str] = json.loads((self.root / CLASSES_FILE).read_text())
        self._rows = {vid: i for i, vid in enumerate(self.manifest["video_id"])}
        # Opening a memory map reads the file's header: once per video, not once per clip. At
        # most `max_mapped` stay open (the oldest closes first), well inside the kernel's limit
        # on a process's maps (vm.max_map_count, 65530 by default) for datasets of any size.
        self._mapped: dict[str, np.ndarray] = {}
        self.max_mapped = max_mapped

    def __getstate__(self) -> dict:
        # A loader worker started by spawn maps the files itself: pickled maps would be copies.
        return self.__dict__ | {"_mapped": {}}

    def _row(self, video_id: str) -> int:
        if video_id not in self._rows:
            raise KeyError(f"{self.root}: no extracted video {video_id!r} in the manifest")
        return self._rows[video_id]

    def frames(self, video_id: str) -> np.ndarray:
        """The stored frames of a video, (T, H, W, 3) uint8, memory-mapped read-only."""
        if video_id not in self._mapped:
            if len(self._mapped) >= self.max_mapped:
                del self._mapped[next(iter(self._mapped))]
            file = self.manifest.at[self._row(video_id), "frames_file"]
            self._mapped[video_id] = np.load(self.root / file, mmap_mode="r")
        return self._mapped[video_id]

    def num_frames(self, video_id: str) -> int:
        """How many frames `frames(video_id)` holds."""
        return int(self.manifest.at[self._row(video_id), "n_frames"])

    def __len__(self) -> int:
        return len(self.manifest)

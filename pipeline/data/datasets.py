"""torch Datasets over the frame store: training clips, GITDL pairs and evaluation views.

Each item draws its randomness from (seed, epoch, index), so a resumed epoch sees the same
clips and crops as the run it replaces, whatever the number of loader workers. Training
items hold their views half made (resized crops and colour factors); the dataset's `collate`
finishes a whole batch of them at once, which costs a fraction of doing it view by view.
"""

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from pipeline.config import AugmentParams, ClipParams
from pipeline.data.augment import draw_train_view, eval_views, finish_train_views
from pipeline.data.clips import evenly_spaced_windows, global_local_pair, random_window
from pipeline.data.frames import FrameStore


class _Seeded(Dataset):
    def __init__(self, seed: int) -> None:
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))


class ClipDataset(_Seeded):
    """(video_id, label) pairs -> (augmented clip (3, T, crop, crop), label) batches."""

    def __init__(
        self,
        store: FrameStore,
        video_ids: list[str],
        labels: list[int],
        clip: ClipParams,
        augment: AugmentParams,
        seed: int,
    ) -> None:
        super().__init__(seed)
        if len(video_ids) != len(labels):
            raise ValueError(f"{len(video_ids)} videos but {len(labels)} labels")
        self.store, self.video_ids, self.labels = store, list(video_ids), list(labels)
        self.clip, self.augment = clip, augment

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        rng = self.rng(index)
        frames = self.store.frames(self.video_ids[index])
        ids = random_window(len(frames), self.clip.frames, self.clip.stride, rng)
        return draw_train_view(frames[ids], self.clip.crop, self.augment, rng), self.labels[index]

    @staticmethod
    def collate(items: list[tuple[dict[str, torch.Tensor], int]]) -> list[torch.Tensor]:
        """Items -> [clips (B, 3, T, crop, crop), labels (B,)]."""
        views, labels = default_collate(items)
        return [finish_train_views(**views), labels]


class GlobalLocalDataset(_Seeded):
    """Unlabeled videos -> GITDL's global and local views with their shared frames.

    Shared-frame positions are padded to the clip length; `valid` marks the real ones.
    """

    def __init__(
        self,
        store: FrameStore,
        video_ids: list[str],
        clip: ClipParams,
        augment: AugmentParams,
        local_span: tuple[float, float],
        seed: int,
    ) -> None:
        super().__init__(seed)
        self.store, self.video_ids = store, list(video_ids)
        self.clip, self.augment, self.local_span = clip, augment, local_span

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        frames = self.store.frames(self.video_ids[index])
        pair = global_local_pair(len(frames), self.clip.frames, self.local_span, rng)
        shared = len(pair.timestamps)
        pad = self.clip.frames - shared
        return {
            "global": draw_train_view(frames[pair.global_ids], self.clip.crop, self.augment, rng),
            "local": draw_train_view(frames[pair.local_ids], self.clip.crop, self.augment, rng),
            "global_pos": torch.from_numpy(np.pad(pair.global_pos, (0, pad))),
            "local_pos": torch.from_numpy(np.pad(pair.local_pos, (0, pad))),
            "timestamps": torch.from_numpy(np.pad(pair.timestamps, (0, pad))),
            "valid": torch.arange(self.clip.frames) < shared,
        }

    @staticmethod
    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        """Items -> a batch whose "global" and "local" are clips (B, 3, T, crop, crop)."""
        batch = default_collate(items)
        return batch | {view: finish_train_views(**batch[view]) for view in ("global", "local")}


class ViewsDataset(Dataset):
    """Videos -> every evaluation view: (windows * crops, 3, T, crop, crop).

    windows=10, crops=3 is the 30-view test protocol; windows=1, crops=1 is the single
    central view that pseudo-labelling embeds once per video.
    """

    def __init__(
        self, store: FrameStore, video_ids: list[str], clip: ClipParams, windows: int, crops: int
    ) -> None:
        self.store, self.video_ids = store, list(video_ids)
        self.clip, self.windows, self.crops = clip, windows, crops

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = self.store.frames(self.video_ids[index])
        windows = evenly_spaced_windows(
            len(frames), self.clip.frames, self.clip.stride, self.windows
        )
        # Windows overlap: every frame they read is resized and cropped once.
        used = np.unique(np.concatenate(windows))
        views = eval_views(frames[used], self.clip.crop, self.crops)  # (crops, 3, U, crop, crop)
        return torch.cat([views[:, :, np.searchsorted(used, ids)] for ids in windows])

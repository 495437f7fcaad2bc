"""How much of a benchmark's class signal is in what moves, and how much does the static scene
hide it? No learning, no model: pixels and softDTW only.

Every validation clip becomes 16 frames spread over its stored frames, the centre square, grey,
averaged down to 12 x 12 pixels. Each clip is compared with every other one by softDTW over
these thumbnails (gamma 0.001, cosine cost, as metric learning compares f's embeddings) and by
the cosine of their temporal means (a bag of frames), with the frames

  as stored                    the backdrop, lighting and colours of each clip included;
  minus the clip's mean frame  what f's backbone sees with alignability_encoder.subtract_clip_mean;
  minus the previous frame     motion alone.

It prints the verification average precision of each (pairs ranked by distance, same class
first) against chance, the share of same-class pairs. Where the stored frames sit at chance
and the others above it, the scene outweighs the actor in every frame, and a frame-wise encoder
that sees whole frames has to learn to ignore it first.

    python -m benchmarks.static_scene --frames data/frames \
        --validation data/splits/validation.parquet
"""

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from pipeline.align.distance import DistanceKind, pairwise_distance
from pipeline.data.frames import FrameStore

FRAMES = 16
THUMBNAIL = 12  # pixels a side
GAMMA = 0.001


def thumbnails(store: FrameStore, video_ids: list[str]) -> torch.Tensor:
    """(N, FRAMES, THUMBNAIL * THUMBNAIL) grey centre-square thumbnails of the videos."""
    clips = []
    for video_id in video_ids:
        stored = np.asarray(store.frames(video_id), dtype=np.float32)  # (T, H, W, 3)
        picked = np.linspace(0, len(stored) - 1, FRAMES).round().astype(int)
        grey = torch.from_numpy(stored[picked]).mean(dim=-1)  # (FRAMES, H, W)
        height, width = grey.shape[1:]
        left = (width - height) // 2
        square = grey[:, :, left : left + height] if width > height else grey
        clips.append(F.adaptive_avg_pool2d(square[:, None], THUMBNAIL).flatten(1))
    return torch.stack(clips)


def same_class_pairs(labels: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Every unordered pair of clips (the upper triangle) and whether it is a same-class one."""
    upper = np.triu_indices(len(labels), k=1)
    return upper, labels[upper[0]] == labels[upper[1]]


def average_precision(clips: torch.Tensor, labels: np.ndarray, kind: DistanceKind) -> float:
    distances = pairwise_distance(clips, clips, kind, GAMMA).numpy()  # (N, N)
    upper, same = same_class_pairs(labels)
    return float(average_precision_score(same, -distances[upper]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="data/frames", help="extract_frames' output folder")
    parser.add_argument(
        "--validation", default="data/splits/validation.parquet", help="make_splits' hold-out"
    )
    args = parser.parse_args()
    validation = pd.read_parquet(args.validation)
    labels = validation["label"].to_numpy()
    stored = thumbnails(FrameStore(args.frames), list(validation["video_id"]))
    chance = float(same_class_pairs(labels)[1].mean())
    views = {
        "as stored": stored - stored.mean(dim=(1, 2), keepdim=True),
        "minus the clip's mean frame": stored - stored.mean(dim=1, keepdim=True),
        "minus the previous frame": stored[:, 1:] - stored[:, :-1],
    }
    print(f"{len(labels)} validation clips, {len(set(labels))} classes; chance AP {chance:.3f}")
    print("| frames | softDTW AP | x chance | bag-of-frames AP | x chance |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, clips in views.items():
        dtw = average_precision(clips, labels, "softdtw")
        bag = average_precision(clips, labels, "pooled_cosine")
        print(f"| {name} | {dtw:.3f} | {dtw / chance:.1f} | {bag:.3f} | {bag / chance:.1f} |")


if __name__ == "__main__":
    main()

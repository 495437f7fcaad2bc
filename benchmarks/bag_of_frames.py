"""How much of the synthetic benchmark can be solved without temporal order?

Decodes every video with decord and resamples it to 32 frames of 48x48 pixels, as frame
extraction and the action encoder's crop see it. Per-frame features come from a small 2D CNN
(four 3x3 conv-BN-ReLU layers, global average pool, 64 numbers per frame) that sees one frame
at a time. It is trained, with all training labels (or --fraction of them), under an
order-aware head: two temporal
convolutions over the features of an 8-frame clip (every 4th stored frame, the action
encoder's view; random 40x40 crops), flattened in time order, then a linear layer. The
trained CNN's features therefore carry whatever the order-aware model needed to tell classes
apart. (Features of a fixed, randomly initialised CNN were too weak for either classifier:
both stayed near chance.) On those same frozen features:

  (a) bag of frames: multinomial logistic regression on the temporal mean of all 32 frames;
  (b) order-aware: the same classifier on the time-ordered concatenation of 8 frames;
  (c) the trained order-aware head itself.

Logistic regressions choose their regularisation by 3-fold cross-validation on the training
set; everything is scored on the test set (centre clip, centre 40x40 crop).

    python benchmarks/bag_of_frames.py --root data/synthetic [--generate] [--fraction 0.1]
    python benchmarks/bag_of_frames.py --root data/moves --variant moves --generate

--variant names the benchmark the dataset at --root was generated as (synthesize.variant);
it says which classes share their frames. --generate writes it from params.yaml's synthesize
section with that variant.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from decord import VideoReader, cpu
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm import tqdm

from pipeline.config import load_params
from pipeline.data.synthetic.variants import VARIANTS, Variant, group_indices
from pipeline.data.synthetic.writer import SPLIT_FILES, VIDEO_DIR, synthesize_dataset

STORED_FRAMES, SIDE = 32, 48  # extract.max_frames; clips.action.crop
CLIP_FRAMES, CLIP_STRIDE, CROP = (
    8,
    4,
    40,
)  # clips.action frames and stride; crop of a 48-pixel frame
CENTRE = (STORED_FRAMES - (CLIP_FRAMES - 1) * CLIP_STRIDE) // 2 + CLIP_STRIDE * np.arange(
    CLIP_FRAMES
)
BATCH = 32


def decode(root: Path, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """Every video of a split: (N, T, 3, SIDE, SIDE) uint8 with T = STORED_FRAMES, labels (N,)."""
    items = json.loads((root / SPLIT_FILES[split]).read_text())
    videos = []
    for item in tqdm(items, desc=f"decode {split}", unit="video"):
        reader = VideoReader(
            str(root / VIDEO_DIR / f"{item['vid_name']}.mp4"), ctx=cpu(0), num_threads=1
        )
        ids = np.linspace(0, len(reader) - 1, STORED_FRAMES).round().astype(int)
        frames = (
            torch.from_numpy(reader.get_batch(list(ids)).asnumpy()).permute(0, 3, 1, 2).float()
        )  # (T, 3, H, W)
        small = nn.functional.interpolate(
            frames, size=(SIDE, SIDE), mode="bilinear", antialias=True
        )
        videos.append(small.round().clamp(0, 255).to(torch.uint8))
    return torch.stack(videos), np.array([item["label"] for item in items])


def _as_input(frames: torch.Tensor) -> torch.Tensor:
    return frames.float() / 255.0 - 0.5


def frame_encoder() -> nn.Module:
    layers, width = [], 3
    for out in (16, 32, 64, 64):
        layers += [
            nn.Conv2d(width, out, 3, padding=1),
            nn.BatchNorm2d(out),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        width = out
    return nn.Sequential(*layers[:-1], nn.AdaptiveAvgPool2d(1), nn.Flatten())


class OrderAware(nn.Module):
    """Per-frame CNN, then temporal convolutions and a linear layer over the ordered frames."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.frames = frame_encoder()
        self.temporal = nn.Sequential(
            nn.Conv1d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(128, 128, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128 * CLIP_FRAMES, classes))

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T, 64), every frame on its own."""
        return self.frames(clips.flatten(0, 1)).reshape(*clips.shape[:2], -1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """(B, CLIP_FRAMES, 64) -> (B, classes)."""
        return self.head(self.temporal(features.transpose(1, 2)))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(clips))


def train(model: OrderAware, videos: torch.Tensor, labels: np.ndarray, epochs: int) -> None:
    rng = np.random.default_rng(0)
    batches = -(-len(videos) // BATCH)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=2e-3, total_steps=epochs * batches
    )
    model.train()
    for _ in tqdm(range(epochs), desc="train order-aware", unit="epoch"):
        for batch in np.array_split(rng.permutation(len(videos)), batches):
            clips = []
            for i in batch:  # a random window of the video and a random crop of its frames
                t = int(rng.integers(0, STORED_FRAMES - (CLIP_FRAMES - 1) * CLIP_STRIDE))
                y, x = rng.integers(0, SIDE - CROP + 1, 2)
                clips.append(
                    videos[
                        i,
                        t : t + CLIP_FRAMES * CLIP_STRIDE : CLIP_STRIDE,
                        :,
                        y : y + CROP,
                        x : x + CROP,
                    ]
                )
            loss = nn.functional.cross_entropy(
                model(_as_input(torch.stack(clips))), torch.from_numpy(labels[batch])
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()


@torch.no_grad()
def frame_features(model: OrderAware, videos: torch.Tensor) -> np.ndarray:
    """(N, T, 3, SIDE, SIDE) uint8 -> (N, T, 64) features of every frame's centre crop."""
    model.eval()
    border = (SIDE - CROP) // 2
    centre = videos[..., border : border + CROP, border : border + CROP]
    return torch.cat([model.features(_as_input(chunk)) for chunk in centre.split(64)]).numpy()


def probe_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Test top-1 of a cross-validated multinomial logistic regression."""
    classifier = LogisticRegressionCV(
        Cs=[0.01, 0.1, 1.0],
        cv=3,
        l1_ratios=(0.0,),  # plain L2 penalty
        scoring="accuracy",
        max_iter=5000,
        use_legacy_attributes=False,
    )
    model = make_pipeline(StandardScaler(), classifier)
    model.fit(x_train, y_train)
    return float((model.predict(x_test) == y_test).mean())


def labelled_subset(labels: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of a seeded `fraction` of each class's training clips (at least 3, so that
    3-fold cross-validation has a clip of each class in every fold)."""
    rng = np.random.default_rng(0)
    picked = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        picked.append(members[: max(3, round(fraction * len(members)))])
    return np.sort(np.concatenate(picked))


def phase_accuracy(variant: Variant, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How often each phase choice of the predicted class is right."""
    vocabulary = variant.vocabulary
    return {
        phase: float(
            np.mean(
                [
                    vocabulary[p][i] == vocabulary[t][i]
                    for p, t in zip(predicted, truth, strict=True)
                ]
            )
        )
        for i, phase in enumerate(variant.phase_names)
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, default=Path("data/synthetic"), help="dataset in the Diving48 layout"
    )
    parser.add_argument(
        "--generate",
        action="store_true",
        help="(re)generate it from params.yaml's synthesize section",
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="order-aware training epochs over all labels"
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="share of each class's training labels every classifier gets (0.1: 5 clips per "
        "class); training then runs epochs / fraction epochs, the same number of steps",
    )
    parser.add_argument(
        "--variant", choices=sorted(VARIANTS), default="poses", help="synthesize.variant"
    )
    args = parser.parse_args()
    variant = VARIANTS[args.variant]
    if args.generate or not (args.root / SPLIT_FILES["train"]).is_file():
        settings = load_params().synthesize.model_copy(update={"variant": args.variant})
        synthesize_dataset(out=args.root, settings=settings)

    # ============ decode, train the order-aware model, freeze its frame features ============
    start = time.perf_counter()
    torch.manual_seed(0)
    train_videos, y_train = decode(args.root, "train")
    test_videos, y_test = decode(args.root, "test")
    labelled = labelled_subset(y_train, args.fraction)
    train_videos, y_train = train_videos[labelled], y_train[labelled]
    model = OrderAware(len(np.unique(y_train)))
    train(model, train_videos, y_train, round(args.epochs / args.fraction))
    f_train = frame_features(model, train_videos)  # (N, 32, 64)
    f_test = frame_features(model, test_videos)  # (M, 32, 64)
    with torch.no_grad():
        predicted = model.classify(torch.from_numpy(f_test[:, CENTRE])).argmax(1).numpy()

    # ============ classifiers on the same frozen features ============
    pooled = probe_accuracy(f_train.mean(1), y_train, f_test.mean(1), y_test)
    ordered = probe_accuracy(
        f_train[:, CENTRE].reshape(len(f_train), -1),
        y_train,
        f_test[:, CENTRE].reshape(len(f_test), -1),
        y_test,
    )
    # The pooled probe can at best find the group of classes that share their frames (poses:
    # body position x landing; moves: the set of moves) and guess within it; report how
    # often it finds the group.
    g_train, g_test = group_indices(variant, y_train), group_indices(variant, y_test)
    pooled_group = probe_accuracy(f_train.mean(1), g_train, f_test.mean(1), g_test)
    groups = len(np.unique(g_train))

    classes = len(np.unique(y_train))
    per_phase = ", ".join(
        f"{k} {v:.1%}" for k, v in phase_accuracy(variant, predicted, y_test).items()
    )
    print(f"{args.root}: {classes} classes, {len(y_train)} labelled, {len(y_test)} test videos")
    within = groups / classes  # finding the group, then guessing among its classes
    print(f"chance: {1 / classes:.1%}; finding the group and guessing within it: {within:.1%}")
    print(f"(a) bag of frames, mean of 32 frames, logistic regression:  top-1 {pooled:.1%}")
    print(f"    the same probe, group only ({groups} groups):        top-1 {pooled_group:.1%}")
    print(f"(b) order-aware, 8 ordered frames, logistic regression:     top-1 {ordered:.1%}")
    trained = float((predicted == y_test).mean())
    print(f"(c) order-aware, the trained temporal head:                 top-1 {trained:.1%}")
    print(f"    its accuracy per phase choice: {per_phase}")
    print(f"wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

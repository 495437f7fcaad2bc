"""How many labels does the CPU action-encoder preset need? Validation top-1 of g trained from
scratch on k labeled clips per class, for several k, on the extracted default dataset.

    python -m benchmarks.label_curve --frames data/frames [--per-class 5 10 20 90]
                                     [--epochs 50 50 50 20] [--seeds 0 1 2]
                                     [--temporal-blocks N] [--time-bins N]

Validation: 10 training clips per class held out (seed 0), never the test set; the k clips
per class are drawn from the rest. g uses params.yaml's action_encoder, clips.action, augment
and finetune settings except the epochs and the seed (of its initial weights, dropout and
clip order; one row per seed), and is scored on one centre view per clip. --temporal-blocks
and --time-bins try other designs of the tiny preset (docs/results.md, section 1).
"""

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config import load_params
from pipeline.data.frames import FrameStore
from pipeline.evaluate.multiview import predict_videos
from pipeline.models.registry import build_action_encoder
from pipeline.train.classify import train_classifier
from pipeline.train.runtime import start_runtime

VALIDATION_PER_CLASS = 10


def held_out_split(train: pd.DataFrame, seed: int) -> tuple[list[str], dict[int, list[str]]]:
    """Validation ids (VALIDATION_PER_CLASS per class) and the rest of each class, shuffled."""
    rng = np.random.default_rng(seed)
    validation, rest = [], {}
    for label, members in train.groupby("label"):
        ids = members.video_id.to_numpy()
        rng.shuffle(ids)
        validation += ids[:VALIDATION_PER_CLASS].tolist()
        rest[int(label)] = ids[VALIDATION_PER_CLASS:].tolist()
    return validation, rest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=Path, default=Path("data/frames"))
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 10, 20, 90])
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=[50, 50, 50, 20], help="one per --per-class"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument(
        "--temporal-blocks", type=int, help="override action_encoder.temporal_blocks"
    )
    parser.add_argument("--time-bins", type=int, help="override action_encoder.time_bins")
    args = parser.parse_args()
    if len(args.epochs) != len(args.per_class):
        parser.error("give one --epochs value per --per-class value")
    params = load_params()
    overrides = {"temporal_blocks": args.temporal_blocks, "time_bins": args.time_bins}
    encoder = params.action_encoder.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    runtime = start_runtime(params.run.device, params.run.threads)
    store = FrameStore(args.frames)
    train = store.manifest[store.manifest["subset"] == "train"]
    labels = dict(zip(train.video_id, train.label.astype(int), strict=True))
    validation, rest = held_out_split(train, seed=0)
    truth = np.array([labels[v] for v in validation])

    rows = []
    for (per_class, epochs), seed in itertools.product(
        zip(args.per_class, args.epochs, strict=True), args.seeds
    ):
        ids = [v for members in rest.values() for v in members[:per_class]]
        torch.manual_seed(seed)
        model = build_action_encoder(encoder, len(store.classes))
        schedule = params.finetune.model_copy(update={"epochs": epochs, "seed": seed})
        with tempfile.TemporaryDirectory() as scratch:
            last = train_classifier(
                model,
                store,
                ids,
                [labels[v] for v in ids],
                params.clips.action,
                params.augment,
                schedule,
                runtime,
                Path(scratch) / "checkpoint.pt",
                config={"per_class": per_class},
            )
        probs = predict_videos(
            model, store, validation, params.clips.action, 1, 1, 30, runtime.device
        )  # (videos, classes)
        top1 = float((probs.argmax(1) == truth).mean())
        rows.append((per_class, len(ids), epochs, seed, last["accuracy"], top1))

    print(f"validation: {len(validation)} clips; chance {1 / len(store.classes):.1%}")
    print(f"action encoder: {encoder.model_dump()}")
    print(
        "| labeled per class | clips | epochs | seed | last-epoch train top-1 | validation top-1 |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for per_class, clips, epochs, seed, train_top1, top1 in rows:
        print(f"| {per_class} | {clips} | {epochs} | {seed} | {train_top1:.1%} | {top1:.1%} |")


if __name__ == "__main__":
    main()

"""How many labels does the CPU action-encoder preset need? Validation top-1 of g trained on
k labeled clips per class, for several k, on the extracted default dataset.

    python -m benchmarks.label_curve --frames data/frames [--per-class 3 5 10 40]
                                     [--epochs 50 50 50 20] [--seeds 0 1 2]
                                     [--pretrained models/pretrained/action.pt | --from-scratch]
                                     [--temporal-blocks N] [--time-bins N]

Validation: the hold-out that make_splits draws for `splits.validation_fraction`
(pipeline/data/splits.py, `hold_out_validation`), here with --validation-fraction (0.2: 10 of
50 clips per class) and `splits.validation_seed`; never the test set. The k clips per class
are drawn from the rest as make_splits draws labeled clips. g starts from pretrain_action's
GITDL trunk (run `dvc repro pretrain_action` first) or, with --from-scratch, from random
weights, and uses params.yaml's action_encoder, clips.action, augment and finetune settings
except the epochs and the seed (of its classifier's initial weights, dropout and clip order;
one row per seed); it is scored on one centre view per clip. --temporal-blocks and
--time-bins try other designs of the tiny preset from scratch (docs/results.md, section 1).
"""

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch

from pipeline.config import load_params
from pipeline.data.frames import FrameStore
from pipeline.data.splits import hold_out_validation, shuffled, training_videos_by_class
from pipeline.inference.multiview import predict_videos
from pipeline.models.registry import build_action_encoder
from pipeline.models.weights import load_backbone_weights
from pipeline.train.classify import train_classifier
from pipeline.train.runtime import start_runtime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=Path, default=Path("data/frames"))
    parser.add_argument("--per-class", type=int, nargs="+", default=[3, 5, 10, 40])
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=[50, 50, 50, 20], help="one per --per-class"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--pretrained", type=Path, default=Path("models/pretrained/action.pt"))
    start.add_argument("--from-scratch", action="store_true", help="g starts from random weights")
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
    runtime = start_runtime(params.run.device, params.run.threads, params.run.precision)
    store = FrameStore(args.frames)
    held_out, rest = hold_out_validation(
        training_videos_by_class(store.manifest, len(store.classes)),
        args.validation_fraction,
        params.splits.validation_seed,
    )
    validation = [v for ids in held_out.values() for v in ids]
    truth = np.array([label for label, ids in held_out.items() for _ in ids])

    rows = []
    for (per_class, epochs), seed in itertools.product(
        zip(args.per_class, args.epochs, strict=True), args.seeds
    ):
        drawn = {label: shuffled(ids, seed, label)[:per_class] for label, ids in rest.items()}
        ids = [v for members in drawn.values() for v in members]
        torch.manual_seed(seed)
        model = build_action_encoder(encoder, len(store.classes))
        if not args.from_scratch:
            load_backbone_weights(model, args.pretrained)
        schedule = params.finetune.model_copy(update={"epochs": epochs, "seed": seed})
        with tempfile.TemporaryDirectory() as scratch:
            last = train_classifier(
                model,
                store=store,
                video_ids=ids,
                labels=[label for label, members in drawn.items() for _ in members],
                clip=params.clips.action,
                augment=params.augment,
                train=schedule,
                runtime=runtime,
                checkpoint_path=Path(scratch) / "checkpoint.pt",
                config={"per_class": per_class},
            )
        probs = predict_videos(
            model,
            store=store,
            video_ids=validation,
            clip=params.clips.action,
            windows=1,
            crops=1,
            batch_size=30,
            device=runtime.device,
            precision=runtime.precision,
        )  # (videos, classes)
        top1 = float((probs.argmax(1) == truth).mean())
        rows.append((per_class, len(ids), epochs, seed, last["accuracy"], top1))

    print(f"validation: {len(validation)} clips; chance {1 / len(store.classes):.1%}")
    print(f"action encoder: {encoder.model_dump()}")
    print(f"starts from: {'random weights' if args.from_scratch else args.pretrained}")
    print(
        "| labeled per class | clips | epochs | seed | last-epoch train top-1 | validation top-1 |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for per_class, clips, epochs, seed, train_top1, top1 in rows:
        print(f"| {per_class} | {clips} | {epochs} | {seed} | {train_top1:.1%} | {top1:.1%} |")


if __name__ == "__main__":
    main()

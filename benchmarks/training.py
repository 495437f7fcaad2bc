"""Training throughput of the CPU presets: clips per second of each objective, the share of
wall time spent waiting for data, and how fast the loader alone delivers clips, on the
extracted default dataset.

    python -m benchmarks.training --frames data/frames [--epochs 2] [--workers 0]

Uses params.yaml's model, clip and batch settings; times the library's own train_one_epoch
(the loop every stage uses), the first epoch discarded as warm-up.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ScheduleParams, load_params
from pipeline.data.datasets import ClipDataset, GlobalLocalDataset
from pipeline.data.frames import FrameStore
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.objectives.classify import ClassifyObjective
from pipeline.objectives.gitdl import GitdlObjective
from pipeline.objectives.metric import MetricObjective
from pipeline.train.balanced_sampler import ClassBalancedBatchSampler
from pipeline.train.loader import training_loader
from pipeline.train.loop import train_one_epoch
from pipeline.train.runtime import distribute, start_runtime
from pipeline.train.schedule import warmup_cosine


def _batch_clips(batch) -> int:
    return len(batch[0]) if isinstance(batch, list | tuple) else len(next(iter(batch.values())))


def measure(
    objective: torch.nn.Module, loader, schedule: ScheduleParams, epochs: int, runtime
) -> dict[str, float]:
    """Mean clips/s and data-wait share over `epochs` timed epochs after one warm-up epoch, and
    the loader's clips/s on its own (one pass, after training, so the frames are cached)."""
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=schedule.lr)
    scheduler = warmup_cosine(optimizer, 0, (epochs + 1) * len(loader))
    objective = distribute(objective, runtime)
    rows = []
    for epoch in range(epochs + 1):
        for part in (loader.dataset, loader.sampler, loader.batch_sampler):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        metrics = train_one_epoch(
            objective,
            loader=loader,
            optimizer=optimizer,
            scheduler=scheduler,
            runtime=runtime,
            grad_clip=5.0,
            epoch=epoch,
        )
        if epoch > 0:
            rows.append(metrics)
    started = time.perf_counter()
    delivered = sum(_batch_clips(batch) for batch in loader)
    figures = {
        key: float(np.mean([r[key] for r in rows]))
        for key in ("clips_per_second", "data_wait_fraction")
    }
    return figures | {"loader_clips_per_second": delivered / (time.perf_counter() - started)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=Path, default=Path("data/frames"))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per objective")
    parser.add_argument("--videos", type=int, default=384, help="training videos per epoch")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    args = parser.parse_args()
    params = load_params()
    runtime = start_runtime(params.run.device, params.run.threads, params.run.precision)
    store = FrameStore(args.frames)
    train = store.manifest[store.manifest["subset"] == "train"].head(args.videos)
    ids, labels = train.video_id.tolist(), train.label.astype(int).tolist()
    classes = len(store.classes)
    torch.manual_seed(0)

    results = {}
    action = ClipDataset(store, ids, labels, params.clips.action, params.augment, seed=0)
    loader = training_loader(
        action, runtime, args.workers, 0, batch_size=params.finetune.batch_size
    )
    model = build_action_encoder(params.action_encoder, classes)
    results["action encoder, cross-entropy"] = measure(
        ClassifyObjective(model), loader, params.finetune, args.epochs, runtime
    )

    alignability = build_alignability_model(params.alignability_encoder)
    pairs = GlobalLocalDataset(
        store, ids, params.clips.alignability, params.augment, params.gitdl.local_span, seed=0
    )
    loader = training_loader(pairs, runtime, args.workers, 0, batch_size=params.gitdl.batch_size)
    gitdl = GitdlObjective(alignability.encoder, params.gitdl)
    results["alignability encoder, GITDL (clip pairs)"] = measure(
        gitdl, loader, params.gitdl, args.epochs, runtime
    )

    alignability.encoder.freeze_backbone()
    metric = params.metric_learning
    clips = ClipDataset(store, ids, labels, params.clips.alignability, params.augment, seed=0)
    sampler = ClassBalancedBatchSampler(
        labels, metric.classes_per_batch, metric.clips_per_class, seed=0
    )
    loader = training_loader(clips, runtime, args.workers, 0, batch_sampler=sampler)
    results["alignability encoder, metric learning"] = measure(
        MetricObjective(alignability, metric), loader, metric, args.epochs, runtime
    )

    print(
        f"{torch.get_num_threads()} torch threads, run.precision {runtime.precision}, "
        f"{args.workers} loader workers, {len(ids)} videos per epoch"
    )
    print("| objective | clips/s | waiting for data | loader alone, clips/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['clips_per_second']:.0f} | {figures['data_wait_fraction']:.1%} "
            f"| {figures['loader_clips_per_second']:.0f} |"
        )


if __name__ == "__main__":
    main()

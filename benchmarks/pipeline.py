"""Where a pipeline run's time goes: wall time per stage split into start-up, data, compute
and logging, training throughput, and its share of the machine's matmul peak (MFU).

    python -m benchmarks.pipeline [--project .] [--parent RUN_ID] [--threads 0]

Reads the MLflow store of a finished run (the project's mlflow.db; by default its latest
pipeline run) and the project's params.yaml. Per stage (MLflow child run):
  start-up   from the previous stage's end to this one's start: DVC's checks and hashing,
             the process start, imports, params and MLflow's start (the first stage's
             start-up is not in the store);
  data       training time spent waiting for batches (epoch_seconds x data_wait_fraction);
  compute    the rest of the training epochs, plus the evaluation passes during training;
  logging    the rest of the stage's run: checkpoints, metrics, artifacts, models, and work
             outside the training loop (embedding, pseudo-labelling, decoding in the data
             stages, which have no training loop: all their time shows here).
Runs logged before the loop timed its epochs (no epoch_seconds) are split by the gaps
between the per-epoch metric timestamps instead, and marked "~".
MFU = model FLOPs per training item (forward + backward, torch.utils.flop_counter, on the
stage's clip shape: a GITDL item is a global and a local clip) x items/s / peak, the peak
being the best rate of a square fp32 (and bf16) matmul measured here with the same threads.
softDTW and the losses are not counted as model FLOPs.
"""

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import ClipParams, Params, load_params
from pipeline.models.action import FramewiseTrunk
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.tracking import PIPELINE_TAG, STAGE_TAG


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) matmul in `dtype` over `repeats`."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: packing buffers, oneDNN kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(
    model: nn.Module, clip: ClipParams, clips_per_item: int, forward: Callable | None = None
) -> float:
    """Forward + backward FLOPs of one training item of `clip`'s shape through `model`, as
    trained (frozen parts get no weight gradients)."""
    clips = torch.randn(clips_per_item, 3, clip.frames, clip.crop, clip.crop)
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = forward(model, clips) if forward else model(clips)
        out.float().sum().backward()
    return counter.get_total_flops()


def flops_per_item(params: Params, classes: int) -> dict[str, float]:
    """Model FLOPs per training item of each training, keyed by stage name and metric prefix
    (retrain trains g as `action_` and f as `alignability_`)."""
    alignability = params.clips.alignability

    def frozen_f() -> nn.Module:
        encoder = build_alignability_model(params.alignability_encoder).encoder
        encoder.freeze_backbone()
        return encoder

    f_gitdl = build_alignability_model(params.alignability_encoder).encoder
    g = build_action_encoder(params.action_encoder, classes)
    per_item = {
        "pretrain_gitdl": training_flops(f_gitdl, alignability, 2, lambda m, x: m.project(m(x))),
        "metric_learning": training_flops(frozen_f(), alignability, 1),
        "finetune": training_flops(g, params.clips.action, 1),
    }
    if params.action_encoder.arch == "r2plus1d_tiny":
        trunk = FramewiseTrunk(
            build_action_encoder(params.action_encoder, 1),
            projection=params.action_encoder.projection,
        )
        per_item["pretrain_action"] = training_flops(
            trunk, alignability, 2, lambda m, x: m.project(m(x))
        )
    per_item["retrain/action_"] = per_item["finetune"]
    per_item["retrain/alignability_"] = per_item["metric_learning"]
    return per_item


def latest_pipeline_run(client: MlflowClient) -> Run:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, order_by=["attributes.start_time DESC"], max_results=1000
    )
    for run in runs:
        if PIPELINE_TAG in run.data.tags:
            return run
    raise SystemExit(f"no pipeline run (tag {PIPELINE_TAG}) in {client.tracking_uri}")


def training_split(client: MlflowClient, run: Run, prefix: str) -> dict[str, float] | None:
    """Seconds of training, of waiting for data and of evaluation, and the median items/s,
    of the training logged under `prefix` in `run`; None when it logged none."""
    history = {
        key: client.get_metric_history(run.info.run_id, f"{prefix}{key}")
        for key in ("epoch_seconds", "data_wait_fraction", "clips_per_second", "monitor_seconds")
    }
    rates = history["clips_per_second"]
    if not rates:
        return None
    waits = {m.step: m.value for m in history["data_wait_fraction"]}
    if history["epoch_seconds"]:
        epochs = {m.step: m.value for m in history["epoch_seconds"]}
        estimated = False
    else:  # older runs: the gap between two epochs' metrics, the first epoch as the median
        stamps = sorted((m.step, m.timestamp) for m in rates)
        gaps = [(b[1] - a[1]) / 1000 for a, b in zip(stamps, stamps[1:], strict=False)]
        first = float(np.median(gaps)) if gaps else 0.0
        epochs = dict(zip([s for s, _ in stamps], [first, *gaps], strict=True))
        estimated = True
    training = sum(epochs.values())
    data = sum(seconds * waits.get(step, 0.0) for step, seconds in epochs.items())
    return {
        "training": training,
        "data": data,
        "evaluate": sum(m.value for m in history["monitor_seconds"]),
        "items_per_second": float(np.median([m.value for m in rates])),
        "estimated": estimated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", type=Path, default=Path("."), help="project folder")
    parser.add_argument("--tracking-uri", help="default: sqlite:///<project>/mlflow.db")
    parser.add_argument("--parent", help="pipeline (parent) run id; default: the latest")
    parser.add_argument("--classes", type=int, default=24, help="classes of g's head")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    project = args.project.resolve()
    params = load_params(project / "params.yaml")
    client = MlflowClient(args.tracking_uri or f"sqlite:///{project / 'mlflow.db'}")
    parent = client.get_run(args.parent) if args.parent else latest_pipeline_run(client)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    peaks = {dtype: matmul_peak(dtype) for dtype in (torch.float32, torch.bfloat16)}
    flops = flops_per_item(params, args.classes)
    print(
        f"pipeline run {parent.info.run_name} ({parent.info.run_id}), "
        f"{torch.get_num_threads()} torch threads; matmul peak fp32 "
        f"{peaks[torch.float32] / 1e9:.0f} GFLOP/s, bf16 {peaks[torch.bfloat16] / 1e9:.0f} GFLOP/s"
    )
    print()
    print(
        "| stage | wall s | start-up s | data s | compute s | logging s | items/s "
        "| GFLOP/item | MFU fp32 | MFU bf16 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    previous_end = None
    totals = np.zeros(5)
    for child in children:
        if child.info.end_time is None:
            continue
        stage = child.data.tags.get(STAGE_TAG, child.info.run_name)
        wall = (child.info.end_time - child.info.start_time) / 1000
        start_up = (
            (child.info.start_time - previous_end) / 1000 if previous_end is not None else None
        )
        previous_end = child.info.end_time
        base = stage.split("@")[0]
        prefixes = ("action_", "alignability_") if base == "retrain" else ("",)
        data = compute = 0.0
        rates, mfus, estimated = [], [], False
        for prefix in prefixes:
            split = training_split(client, child, prefix)
            if split is None:
                continue
            data += split["data"]
            compute += split["training"] - split["data"] + split["evaluate"]
            estimated |= split["estimated"]
            per_item = flops.get(f"{base}/{prefix}" if prefix else base)
            rate = split["items_per_second"]
            rates.append(f"{rate:.0f}")
            if per_item:
                mfus.append(
                    (
                        per_item / 1e9,
                        per_item * rate / peaks[torch.float32],
                        per_item * rate / peaks[torch.bfloat16],
                    )
                )
        logging = max(wall - data - compute, 0.0)
        mark = "~" if estimated else ""
        totals += (wall, start_up or 0.0, data, compute, logging)
        figures = (
            " / ".join(f"{g:.3g}" for g, _, _ in mfus) or "-",
            " / ".join(f"{m:.1%}" for _, m, _ in mfus) or "-",
            " / ".join(f"{m:.1%}" for _, _, m in mfus) or "-",
        )
        print(
            f"| {stage} | {wall:.1f} | {'-' if start_up is None else f'{start_up:.1f}'} "
            f"| {mark}{data:.1f} | {mark}{compute:.1f} "
            f"| {mark}{logging:.1f} | {' / '.join(rates) or '-'} | {' | '.join(figures)} |"
        )
    print(
        f"| all stages | {totals[0]:.1f} | {totals[1]:.1f} | {totals[2]:.1f} | {totals[3]:.1f} "
        f"| {totals[4]:.1f} | | | | |"
    )
    print("retrain: g (action_) / f (alignability_); ~: epoch times from metric timestamps")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

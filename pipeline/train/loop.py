"""The one training loop every stage uses.

An objective is an nn.Module whose forward takes a batch and returns a dict of scalar
tensors with a "loss" entry; wrapping that module in DDP keeps gradient synchronisation
correct whatever the objective computes. `fit` orchestrates: optimizer, warm-up + cosine
schedule, the run's precision (pipeline/precision.py), gradient clipping, a checkpoint after
every epoch, resuming from it, and per-epoch metrics to the active MLflow run.
`train_one_epoch` does one pass.
"""

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.config import ScheduleParams
from pipeline.train.runtime import Runtime, distribute, unwrap
from pipeline.train.schedule import warmup_cosine


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def train_one_epoch(
    objective: nn.Module,
    *,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    runtime: Runtime,
    grad_clip: float,
    epoch: int,
) -> dict[str, float]:
    """One pass over `loader`; returns the epoch means of the objective's outputs, its wall
    seconds, the share of them spent waiting for data, and clips per second."""
    objective.train()
    trainable = [p for p in objective.parameters() if p.requires_grad]
    totals: dict[str, float] = defaultdict(float)
    steps, clips, data_wait = 0, 0, 0.0
    started = ready = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not runtime.is_main)
    for batch in bar:
        data_wait += time.perf_counter() - ready
        batch = to_device(batch, runtime.device)
        with runtime.autocast():
            outputs = objective(batch)
        loss = outputs["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"epoch {epoch}, step {steps}: loss is {loss.item()}; stopping"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(trainable, grad_clip)
        optimizer.step()
        scheduler.step()
        for name, value in outputs.items():
            totals[name] += float(value.detach())
        steps += 1
        clips += (
            len(batch[0]) if isinstance(batch, list | tuple) else len(next(iter(batch.values())))
        )
        bar.set_postfix(loss=f"{loss.item():.4f}")
        ready = time.perf_counter()
    elapsed = time.perf_counter() - started
    metrics = {name: total / max(steps, 1) for name, total in totals.items()}
    if runtime.distributed:  # report the mean over all processes, not rank 0's share
        names = sorted(metrics)
        packed = torch.tensor([metrics[n] for n in names], dtype=torch.float64)
        dist.all_reduce(packed)
        metrics = dict(zip(names, (packed / runtime.world_size).tolist(), strict=True))
    metrics["epoch_seconds"] = elapsed  # benchmarks/pipeline.py splits stage time with it
    metrics["data_wait_fraction"] = data_wait / max(elapsed, 1e-9)
    metrics["clips_per_second"] = clips * runtime.world_size / max(elapsed, 1e-9)
    metrics["lr"] = scheduler.get_last_lr()[0]
    return metrics


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed everything random in the loader, so a resumed epoch replays the same batches."""
    for part in (loader.dataset, loader.sampler, loader.batch_sampler):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def _rank0_checkpoint(path: Path, runtime: Runtime) -> dict[str, Any] | None:
    """The checkpoint at `path` as rank 0 sees it, on every process: only rank 0 writes
    checkpoints, so under torchrun across machines the other nodes have none, and every rank
    must resume from the same epoch or their collective calls would not pair up."""
    previous = load_checkpoint(path) if runtime.is_main and path.is_file() else None
    if runtime.distributed:
        shared = [previous]
        dist.broadcast_object_list(shared, src=0)
        previous = shared[0]
    return previous


def fit(
    objective: nn.Module,
    *,
    loader: DataLoader,
    train: ScheduleParams,
    runtime: Runtime,
    checkpoint_path: str | Path,
    config: dict[str, Any],
    monitor: Callable[[], dict[str, float]] | None = None,
    monitor_every: int = 1,
    log_prefix: str = "",
) -> dict[str, float]:
    """Train `objective` for `train.epochs` epochs and return the last epoch's metrics.

    A checkpoint is written to `checkpoint_path` after every epoch; when one exists whose
    config equals `config` (at the runtime's precision), training resumes after its epoch.
    `monitor`, when given, runs on the main process after every `monitor_every` epochs and
    after the last (the objective trains its modules in place, so the caller's references see
    the current weights); its first metric is tracked as the best.
    Metrics go to MLflow as `<log_prefix><name>`, so one run can hold two trainings.
    """
    checkpoint_path = Path(checkpoint_path)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=train.lr, weight_decay=train.weight_decay)
    steps_per_epoch = len(loader)
    scheduler = warmup_cosine(
        optimizer, train.warmup_epochs * steps_per_epoch, train.epochs * steps_per_epoch
    )
    objective.to(runtime.device)
    start_epoch, best, metrics = 0, None, {}
    previous = _rank0_checkpoint(checkpoint_path, runtime)
    if previous is not None:
        # the same training at another precision would continue other numbers
        if previous["config"] == config and previous.get("precision") == runtime.precision:
            objective.load_state_dict(previous["model"])
            optimizer.load_state_dict(previous["optimizer"])
            scheduler.load_state_dict(previous["scheduler"])
            start_epoch, best = previous["epoch"] + 1, previous["best_metric"]
            metrics = previous["metrics"]
            if runtime.is_main:
                print(f"resuming from {checkpoint_path} after epoch {previous['epoch']}")
    model = distribute(objective, runtime)
    for epoch in range(start_epoch, train.epochs):
        torch.manual_seed(train.seed * 100_003 + epoch)  # dropout and the like replay on resume
        _set_epoch(loader, epoch)
        metrics = train_one_epoch(
            model,
            loader=loader,
            optimizer=optimizer,
            scheduler=scheduler,
            runtime=runtime,
            grad_clip=train.grad_clip,
            epoch=epoch,
        )
        if not runtime.is_main:
            continue
        due = (epoch + 1) % monitor_every == 0 or epoch == train.epochs - 1
        if monitor is not None and due:
            monitor_started = time.perf_counter()
            monitored = monitor()
            first = next(iter(monitored.values()), None)
            best = first if best is None or (first is not None and first > best) else best
            metrics |= monitored
            metrics["monitor_seconds"] = time.perf_counter() - monitor_started
        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"{log_prefix}{k}": v for k, v in metrics.items()}, step=epoch)
        print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        save_checkpoint(
            checkpoint_path,
            {
                "model": unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_metric": best,
                "metrics": metrics,
                "config": config,
                "precision": runtime.precision,
            },
        )
    return metrics

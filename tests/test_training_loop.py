"""The shared training loop: checkpoints, resuming, non-finite losses, and DDP on CPUs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from pipeline.checkpoint import load_checkpoint
from pipeline.config import AugmentParams, ClipParams, TrainParams
from pipeline.data.datasets import ClipDataset
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import start_runtime

HERE = Path(__file__).resolve().parent


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, batch):
        x, y = batch
        loss = ((self.linear(x).squeeze(-1) - y) ** 2).mean()
        return {"loss": loss}


def _data(n=32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]))


def _fit(tmp_path, epochs, config=None, stop_after=None):
    torch.manual_seed(0)
    objective = Regression()
    runtime = start_runtime("cpu", 0, "fp32")
    loader = training_loader(_data(), runtime, workers=0, seed=0, batch_size=8)
    train = TrainParams(epochs=epochs, batch_size=8, lr=0.05, warmup_epochs=1)
    metrics = fit(
        objective,
        loader=loader,
        train=train,
        runtime=runtime,
        checkpoint_path=tmp_path / "ckpt.pt",
        config=config or {"run": 1},
    )
    return objective, metrics


def test_resuming_continues_exactly_where_a_stopped_run_left_off(tmp_path):
    full, _ = _fit(tmp_path / "full", epochs=4)
    # a run that dies during its second epoch's evaluation, after one saved epoch
    half = TrainParams(epochs=4, batch_size=8, lr=0.05, warmup_epochs=1)
    torch.manual_seed(0)
    objective = Regression()
    runtime = start_runtime("cpu", 0, "fp32")
    loader = training_loader(_data(), runtime, workers=0, seed=0, batch_size=8)

    class Stop(Exception):
        pass

    calls = {"n": 0}

    def stop_in_second_epoch():
        calls["n"] += 1
        if calls["n"] == 2:
            raise Stop
        return {"unused": 0.0}

    with pytest.raises(Stop):
        fit(
            objective,
            loader=loader,
            train=half,
            runtime=runtime,
            checkpoint_path=tmp_path / "resumed" / "ckpt.pt",
            config={"run": 1},
            monitor=stop_in_second_epoch,
        )
    assert load_checkpoint(tmp_path / "resumed" / "ckpt.pt")["epoch"] == 0  # epoch 1 never saved
    resumed, _ = _fit(tmp_path / "resumed", epochs=4)
    assert load_checkpoint(tmp_path / "resumed" / "ckpt.pt")["epoch"] == 3
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_evaluation_runs_every_n_epochs_and_after_the_last(tmp_path):
    runtime = start_runtime("cpu", 0, "fp32")
    loader = training_loader(_data(), runtime, workers=0, seed=0, batch_size=8)
    train = TrainParams(epochs=7, batch_size=8, lr=0.05, warmup_epochs=1)
    objective = Regression()
    steps = []
    objective.register_forward_hook(lambda *_: steps.append(1))
    epochs_done = []

    def monitor():
        epochs_done.append(len(steps) // len(loader))
        return {"evaluations": float(len(epochs_done))}

    metrics = fit(
        objective,
        loader=loader,
        train=train,
        runtime=runtime,
        checkpoint_path=tmp_path / "ckpt.pt",
        config={"run": 1},
        monitor=monitor,
        monitor_every=3,
    )
    assert epochs_done == [3, 6, 7]
    assert metrics["evaluations"] == 3.0


def test_a_checkpoint_with_another_config_is_not_resumed(tmp_path):
    _fit(tmp_path, epochs=2, config={"lr": 1})
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["config"] == {"lr": 1}
    _fit(tmp_path, epochs=1, config={"lr": 2})
    assert load_checkpoint(tmp_path / "ckpt.pt")["epoch"] == 0  # started over


def test_checkpoints_load_with_weights_only_and_unreadable_ones_name_the_file(tmp_path):
    _fit(tmp_path, epochs=1)
    checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert set(checkpoint) >= {
        "model",
        "optimizer",
        "scheduler",
        "precision",
        "epoch",
        "best_metric",
        "config",
    }
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "broken.pt")


def test_a_non_finite_loss_stops_training(tmp_path):
    class Exploding(Regression):
        def forward(self, batch):
            return {"loss": super().forward(batch)["loss"] * float("inf")}

    runtime = start_runtime("cpu", 0, "fp32")
    loader = training_loader(_data(), runtime, workers=0, seed=0, batch_size=8)
    with pytest.raises(FloatingPointError, match="epoch 0, step 0: loss is inf"):
        fit(
            Exploding(),
            loader=loader,
            train=TrainParams(epochs=1, batch_size=8),
            runtime=runtime,
            checkpoint_path=tmp_path / "c.pt",
            config={},
        )


def _run_step(out: Path, kind: str, processes: int) -> list[dict]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    launcher = [sys.executable]
    if processes > 1:
        launcher += [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
        ]
    subprocess.run(
        [*launcher, str(HERE / "ddp_step.py"), str(out), kind], check=True, env=env, timeout=300
    )
    return [
        torch.load(out.with_name(f"{out.stem}-{r}.pt"), weights_only=True) for r in range(processes)
    ]


def test_two_ddp_processes_match_one_process_on_the_same_global_batch(tmp_path):
    (single,) = _run_step(tmp_path / "single.pt", "linear", 1)
    rank0, rank1 = _run_step(tmp_path / "ddp.pt", "linear", 2)
    initial = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 16 * 16, 3))
    for name, value in single.items():
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the DDP processes"
        assert torch.allclose(rank0[name], value, atol=1e-6), f"{name}: DDP and one process differ"
    assert initial.state_dict()["1.weight"].shape == single["1.weight"].shape


def test_ddp_processes_keep_identical_parameters_with_batchnorm(tmp_path):
    rank0, rank1 = _run_step(tmp_path / "ddp.pt", "r2plus1d", 2)
    assert rank0.keys() == rank1.keys()
    # BatchNorm running statistics are buffers each process updates from its own batch (DDP
    # re-broadcasts rank 0's before every forward); the learned parameters must agree exactly.
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    parameters = [name for name in rank0 if not name.endswith(buffers)]
    assert len(parameters) > 10
    for name in parameters:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the DDP processes"


def test_a_checkpoint_at_another_precision_is_not_resumed(tmp_path):
    _fit(tmp_path, epochs=2)
    assert load_checkpoint(tmp_path / "ckpt.pt")["precision"] == "fp32"
    torch.manual_seed(0)
    runtime = start_runtime("cpu", 0, "bf16")
    fit(
        Regression(),
        loader=training_loader(_data(), runtime, workers=0, seed=0, batch_size=8),
        train=TrainParams(epochs=1, batch_size=8, lr=0.05, warmup_epochs=1),
        runtime=runtime,
        checkpoint_path=tmp_path / "ckpt.pt",
        config={"run": 1},
    )
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    assert checkpoint["epoch"] == 0 and checkpoint["precision"] == "bf16"  # started over


def test_loader_workers_draw_each_epochs_crops_as_the_training_process_does():
    frames = np.random.default_rng(0).integers(0, 256, (12, 40, 72, 3), dtype=np.uint8)

    class OneVideoStore:  # ClipDataset reads nothing from a store but frames()
        def frames(self, video_id: str) -> np.ndarray:
            return frames

    dataset = ClipDataset(
        OneVideoStore(),
        ["v"] * 4,
        [0] * 4,
        ClipParams(frames=4, stride=2, crop=32),
        AugmentParams(),
        seed=0,
    )
    runtime = start_runtime("cpu", 0, "fp32")
    epochs = {}
    for workers in (0, 1):
        loader = training_loader(dataset, runtime, workers, seed=0, batch_size=4)
        epochs[workers] = []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            loader.sampler.set_epoch(epoch)
            epochs[workers].append(torch.cat([clips for clips, _ in loader]))
    assert not torch.equal(epochs[0][0], epochs[0][1])  # a new epoch draws new crops
    for epoch in range(2):
        assert torch.equal(epochs[0][epoch], epochs[1][epoch])

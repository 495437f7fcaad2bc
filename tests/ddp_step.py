"""Two training epochs of a small classifier on a fixed set of 8 clips (one global batch per
epoch) through pipeline.train.loop.fit; writes the resulting parameters per process.

Run plainly or under torchrun: `ddp_step.py OUT {linear,r2plus1d}`.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from pipeline.config import ActionEncoderParams, TrainParams
from pipeline.models.registry import build_action_encoder
from pipeline.objectives.classify import ClassifyObjective
from pipeline.train.loader import training_loader
from pipeline.train.loop import fit
from pipeline.train.runtime import start_runtime, stop_runtime


def main(out: Path, kind: str) -> None:
    torch.set_num_threads(1)
    runtime = start_runtime("cpu", 0, "fp32")
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(8, 3, 4, 16, 16, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    torch.manual_seed(0)
    if kind == "linear":  # no batch statistics: DDP must equal one process exactly
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 16 * 16, 3))
    else:
        model = build_action_encoder(ActionEncoderParams(widths=[4, 8], dropout=0.0), num_classes=3)
    train = TrainParams(epochs=2, batch_size=8, lr=0.01, warmup_epochs=0, grad_clip=1.0)
    loader = training_loader(TensorDataset(clips, labels), runtime, workers=0, seed=0, batch_size=8)
    checkpoint = out.with_name(f"{out.stem}-checkpoint-{runtime.rank}.pt")
    fit(
        ClassifyObjective(model),
        loader=loader,
        train=train,
        runtime=runtime,
        checkpoint_path=checkpoint,
        config={"kind": kind},
    )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, out.with_name(f"{out.stem}-{runtime.rank}.pt"))
    stop_runtime(runtime)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

"""Compute levers of the CPU preset, each against plain fp32 on the same model, batch and
inputs in the same run: training steps per second and how far the loss moves.

    python -m benchmarks.levers [--rounds 5] [--steps 5] [--threads 2]

Models and batch shapes are params.yaml's (g at finetune's batch on clips.action; f with its
backbone frozen at metric_learning's batch, and whole at gitdl's batch of global + local
clips, on clips.alignability; and the two inference passes: g on evaluate's batch of views,
f on pseudo_label's embedding batch), on random clips with random labels, so no dataset is
needed. A training step is forward, a stand-in loss (cross-entropy for g, the mean square of
the frame embeddings for f), backward and an Adam step; an inference step is a forward pass
in inference mode (Adam levers do not apply to it). Levers:
  bf16 autocast     torch.autocast("cpu", torch.bfloat16) around the forward (oneDNN bf16
                    convolutions and matmuls on CPUs with AVX-512 bf16);
  channels_last     model and clips in channels_last(_3d) memory format;
  foreach Adam      torch.optim.Adam(foreach=True) (the default on CPU is the per-tensor loop);
  fused Adam        torch.optim.Adam(fused=True);
  compile           torch.compile(model), its compile time reported apart; also on top of
                    the others ("bf16 + channels_last + compile");
  bf16 + channels_last  both at once (what the pipeline runs with run.precision: bf16).
The variants take turns in each round; a ratio is the median over rounds of plain fp32's
time over the variant's in the same round. "loss diff" is the largest relative difference of
the variant's losses over the timed steps to plain fp32's on the same batches.
"""

import argparse
import copy
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pipeline.config import load_params
from pipeline.models.registry import build_action_encoder, build_alignability_model
from pipeline.precision import channels_last


def step_runner(
    model: nn.Module, batch: torch.Tensor, targets: torch.Tensor | None, lever: str
) -> tuple[Callable[[], float], float]:
    """A function running one step under `lever` and returning its loss, and the seconds spent
    preparing it (compile time for `compile`). A training step without `targets` is f's
    (stand-in loss); `targets` None and the model in eval mode is an inference pass."""
    model = copy.deepcopy(model)
    optimizer_options = {"foreach": False}
    if lever == "foreach Adam":
        optimizer_options = {"foreach": True}
    if lever == "fused Adam":
        optimizer_options = {"fused": True}
    if "channels_last" in lever:
        # as the pipeline does: the weights channels-last, the clips as they come (a
        # convolution runs channels-last when its weight is)
        channels_last(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-4, **optimizer_options)
    forward = torch.compile(model) if "compile" in lever else model
    autocast = lever.startswith("bf16")
    steps = iter(range(1_000_000))

    def step() -> float:
        torch.manual_seed(next(steps))  # the k-th step of every variant draws the same dropout
        if not model.training:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                return forward(batch).float().square().mean().item()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = forward(batch)
        if targets is not None:
            loss = nn.functional.cross_entropy(out.float(), targets)
        else:
            loss = out.float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    started = time.perf_counter()
    if "compile" in lever:
        step()  # compiles
    return step, time.perf_counter() - started


def compare(name, model, batch, targets, levers, rounds, steps) -> list[tuple]:
    rows = []
    runners = {}
    for lever in ("fp32", *levers):
        torch.manual_seed(0)
        runners[lever] = step_runner(model, batch, targets, lever)
    seconds = {lever: [] for lever in runners}
    losses = {lever: [] for lever in runners}
    for step, _ in runners.values():
        step()  # warm-up
    for _ in range(rounds):
        for lever, (step, _) in runners.items():
            time.sleep(0.1)
            started = time.perf_counter()
            losses[lever].append([step() for _ in range(steps)])
            seconds[lever].append(time.perf_counter() - started)
    base = np.array(seconds["fp32"])
    reference = np.array(losses["fp32"])
    for lever in runners:
        mine = np.array(seconds[lever])
        ratio = float(np.median(base / mine))
        diff = float(np.max(np.abs(np.array(losses[lever]) - reference) / np.abs(reference)))
        rate = steps * len(batch) / float(np.median(mine))
        rows.append((name, lever, rate, ratio, diff, runners[lever][1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument(
        "--levers",
        nargs="+",
        default=["bf16 autocast", "channels_last", "bf16 + channels_last", "fused Adam"],
        help='also: foreach Adam, compile, "bf16 + channels_last + compile"',
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    g = torch.Generator().manual_seed(0)

    def clips(count, clip):
        return torch.randn(count, 3, clip.frames, clip.crop, clip.crop, generator=g)

    action = build_action_encoder(params.action_encoder, args.classes)
    f = build_alignability_model(params.alignability_encoder).encoder
    frozen = copy.deepcopy(f)
    frozen.freeze_backbone()
    batch = params.finetune.batch_size
    cases = [
        (
            "g, finetune",
            action,
            clips(batch, params.clips.action),
            torch.randint(0, args.classes, (batch,), generator=g),
        ),
        (
            "f frozen backbone, metric",
            frozen,
            clips(params.metric_learning.batch_size, params.clips.alignability),
            None,
        ),
        ("f whole, GITDL", f, clips(2 * params.gitdl.batch_size, params.clips.alignability), None),
        (
            "g, evaluate (inference, a video's views)",
            copy.deepcopy(action).eval(),
            clips(params.evaluate.batch_size, params.clips.action),
            None,
        ),
        (
            "f, embedding (inference)",
            copy.deepcopy(f).eval(),
            clips(params.pseudo_label.batch_size, params.clips.alignability),
            None,
        ),
    ]
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.threads} torch threads")
    print(f"oneDNN (mkldnn) available: {torch.backends.mkldnn.is_available()}")
    print("| model, training | lever | clips/s | speed-up vs fp32 | loss diff | prepare s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, model, inputs, targets in cases:
        levers = [lever for lever in args.levers if model.training or "Adam" not in lever]
        for row in compare(name, model, inputs, targets, levers, args.rounds, args.steps):
            name_, lever, rate, ratio, diff, prepare = row
            print(
                f"| {name_} | {lever} | {rate:.0f} | {ratio:.2f}x | {diff:.1e} | {prepare:.1f} |",
                flush=True,  # a case at a time: on a loaded machine all of them take long
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

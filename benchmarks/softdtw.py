"""softDTW on the CPU: pairs per second of every public path of ours against pysdtw's CPU
path on the same pairs, in one run; values against tslearn.

Cosine cost 1 - cos(q_i, e_j) on random clips (d = 128), gamma = 0.001, one row per path,
clip length T and dtype (float32 and float64 inputs):
  paired forward     soft_dtw(cost) without gradient on --pairs independent (T, T) cost
                     matrices, given to pysdtw as they are (its dist_func returns them);
  paired fwd + bwd   the same with the gradient into the costs;
  cross forward      soft_dtw_cross over every query x exemplar pair, no gradient
                     (pseudo-labelling); pysdtw gets the same pairs in batches of --chunk;
  cross fwd + bwd    the distance matrix of one batch of --batch clips and its gradient
                     into the clips (training).
Ours recurses in float64 except the float32 forward-only paths (the float32 inference
sweep); pysdtw recurses in float64 whatever the input. The methods take turns in each of
--rounds rounds, with a short pause before each run, so that load from other processes hits
them alike; rates are medians over rounds, and a ratio is the median over rounds of
pysdtw's time over ours in the same round: wall time, and CPU time of all the process's
threads (steadier when other processes load the machine, as it leaves out the time a
thread waits for a core).
  values          ours in float64 against tslearn's recursion on the same cost matrices,
                  and ours on float32 clips against ours on the same clips in float64;
  1M pairs        1000 queries x 1000 exemplars at T = 16: time and peak memory.

    python -m benchmarks.softdtw --threads 2
"""

import argparse
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numba
import numpy as np
import pysdtw
import torch
import torch.nn.functional as F
from tslearn.metrics import SoftDTW as TslearnSoftDTW

from pipeline.align.distance import soft_dtw_cross
from pipeline.align.softdtw import soft_dtw

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N, d), (B, M, d) -> (B, N, M): 1 - cos, the cost both other libraries are given."""
    return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(1, 2)


def by_pairs(layer: Callable, queries: torch.Tensor, exemplars: torch.Tensor, chunk: int):
    """Run a (X, Y) -> (B,) softDTW layer over every query x exemplar pair, chunk by chunk."""
    q_index = torch.arange(len(queries)).repeat_interleave(len(exemplars))
    e_index = torch.arange(len(exemplars)).repeat(len(queries))
    values = [
        layer(queries[q_index[s : s + chunk]], exemplars[e_index[s : s + chunk]])
        for s in range(0, len(q_index), chunk)
    ]
    return torch.cat(values).view(len(queries), len(exemplars))


def cross_contenders(gamma: float, chunk: int) -> dict[str, Distance]:
    """(queries, exemplars) -> (Nq, Ne) softDTW distance matrices, ours and pysdtw's."""
    layer = pysdtw.SoftDTW(gamma=gamma, dist_func=cosine_cost, use_cuda=False)
    return {
        "ours": partial(soft_dtw_cross, gamma=gamma),
        "pysdtw": partial(by_pairs, layer, chunk=chunk),
    }


def paired_contenders(gamma: float) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """(B, N, M) costs -> (B,) softDTW values, ours and pysdtw's on the same matrices."""
    layer = pysdtw.SoftDTW(gamma=gamma, dist_func=lambda cost, _: cost, use_cuda=False)
    return {"ours": partial(soft_dtw, gamma=gamma), "pysdtw": lambda cost: layer(cost, cost)}


def round_times(
    methods: dict[str, Callable[[], None]], rounds: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Wall seconds and CPU seconds (all threads of this process) of every method in every
    round; the methods take turns within a round."""
    for run in methods.values():
        run()  # compile and warm caches
    wall = {name: np.empty(rounds) for name in methods}
    cpu = {name: np.empty(rounds) for name in methods}
    for r in range(rounds):
        for name, run in methods.items():
            # let the previous run's idle OpenMP threads stop spinning and fall asleep, so
            # they do not take cores from the next contender
            time.sleep(0.2)
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name][r] = time.perf_counter() - start
            cpu[name][r] = time.process_time() - start_cpu
    return wall, cpu


def without_gradient(distance: Callable, *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        distance(*inputs)


def with_gradient(distance: Callable, *inputs: torch.Tensor) -> None:
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    distance(*leaves).sum().backward()


def cross_with_gradient(distance: Distance, batch: torch.Tensor) -> None:
    clips = batch.clone().requires_grad_(True)
    distance(clips, clips).sum().backward()


def throughput(length: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per path and dtype, for clips of `length` frames: pairs per second of ours and pysdtw
    (median round) and the median over rounds of pysdtw's time over ours in that round."""
    g = torch.Generator().manual_seed(length)
    queries = torch.randn(args.queries, length, args.dim, generator=g)
    exemplars = torch.randn(args.exemplars, length, args.dim, generator=g)
    batch = torch.randn(args.batch, length, args.dim, generator=g)
    left_clips = torch.randn(args.pairs, length, args.dim, generator=g)
    right_clips = torch.randn(args.pairs, length, args.dim, generator=g)
    costs = cosine_cost(left_clips, right_clips)  # (pairs, T, T)
    paired, cross = paired_contenders(args.gamma), cross_contenders(args.gamma, args.chunk)
    results = {}
    for dtype in (torch.float32, torch.float64):
        c, q, e, b = (x.to(dtype) for x in (costs, queries, exemplars, batch))
        tasks = {
            "paired forward": (paired, without_gradient, (c,), len(c)),
            "paired fwd + bwd": (paired, with_gradient, (c,), len(c)),
            "cross forward": (cross, without_gradient, (q, e), len(q) * len(e)),
            "cross fwd + bwd": (cross, cross_with_gradient, (b,), len(b) ** 2),
        }
        for task, (methods, run, inputs, pairs) in tasks.items():
            if not any(task.startswith(path) for path in args.paths):
                continue
            seconds, cpu = round_times(
                {name: partial(run, f, *inputs) for name, f in methods.items()}, args.rounds
            )
            row = {name: pairs / float(np.median(t)) for name, t in seconds.items()}
            row["ratio"] = float(np.median(seconds["pysdtw"] / seconds["ours"]))
            row["cpu ratio"] = float(np.median(cpu["pysdtw"] / cpu["ours"]))
            results[f"{task}, {str(dtype).removeprefix('torch.')}"] = row
    return results


def max_relative_error(length: int, dim: int, gamma: float, pairs: int) -> float:
    """Largest |ours - tslearn| / |tslearn| over `pairs` cosine-cost pairs, float64."""
    g = torch.Generator().manual_seed(1)
    queries = torch.randn(pairs, length, dim, generator=g, dtype=torch.float64)
    exemplars = torch.randn(1, length, dim, generator=g, dtype=torch.float64)
    ours = soft_dtw_cross(queries, exemplars, gamma)[:, 0]  # (pairs,)
    costs = cosine_cost(queries, exemplars.expand(pairs, -1, -1)).numpy()
    theirs = np.array([TslearnSoftDTW(c, gamma=gamma).compute() for c in costs])
    return float(np.max(np.abs(ours.numpy() - theirs) / np.abs(theirs)))


def float32_relative_error(length: int, dim: int, gamma: float, n_clips: int) -> float:
    """Largest |float32 - float64| / |float64| of ours over n_clips x n_clips clip pairs: the
    float32 inference sweep against the float64 recursion on the same clips."""
    g = torch.Generator().manual_seed(3)
    queries = torch.randn(n_clips, length, dim, generator=g)
    exemplars = torch.randn(n_clips, length, dim, generator=g)
    with torch.no_grad():
        single = soft_dtw_cross(queries, exemplars, gamma).double()  # (n, n)
        double = soft_dtw_cross(queries.double(), exemplars.double(), gamma)  # (n, n)
    return float(((single - double).abs() / double.abs()).max())


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def million_pairs(dim: int, gamma: float) -> tuple[float, float]:
    """Seconds and peak resident-memory growth (MiB) for 1000 x 1000 clips of 16 frames.
    Run first, before other benchmarks leave freed memory the allocator could reuse."""
    g = torch.Generator().manual_seed(2)
    queries = torch.randn(1000, 16, dim, generator=g)
    exemplars = torch.randn(1000, 16, dim, generator=g)
    with torch.no_grad():
        soft_dtw_cross(queries[:8], exemplars[:8], gamma)
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        before = _rss_kib("VmRSS")
        start = time.perf_counter()
        distances = soft_dtw_cross(queries, exemplars, gamma)
        seconds = time.perf_counter() - start
    assert distances.shape == (1000, 1000) and torch.isfinite(distances).all()
    return seconds, (_rss_kib("VmHWM") - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32], help="frames T")
    parser.add_argument("--dim", type=int, default=128, help="embedding size d")
    parser.add_argument("--gamma", type=float, default=0.001)
    parser.add_argument("--queries", type=int, default=200, help="bulk forward: unlabeled clips")
    parser.add_argument("--exemplars", type=int, default=100, help="bulk forward: exemplars")
    parser.add_argument("--batch", type=int, default=96, help="training batch (clips)")
    parser.add_argument("--pairs", type=int, default=2048, help="paired: cost matrices")
    parser.add_argument("--chunk", type=int, default=512, help="cross: pairs per pysdtw call")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; medians are kept")
    parser.add_argument(
        "--paths", nargs="+", default=["paired", "cross"], help="paired and/or cross"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)

    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    million_seconds, million_peak = million_pairs(args.dim, args.gamma)
    print(
        f"CPU: {cpu_name()}, {args.threads} threads, torch {torch.__version__}, "
        f"numba {numba.__version__}, d = {args.dim}, gamma = {args.gamma}"
    )
    print()
    print(
        "| T | path, dtype | ours pairs/s | pysdtw pairs/s | ours / pysdtw (wall) "
        "| ours / pysdtw (CPU time) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for length in args.lengths:
        for task, rate in throughput(length, args).items():
            print(
                f"| {length} | {task} | {rate['ours']:,.0f} | {rate['pysdtw']:,.0f} | "
                f"{rate['ratio']:.1f}x | {rate['cpu ratio']:.1f}x |"
            )
    print()
    for length in args.lengths:
        error = max_relative_error(length, args.dim, args.gamma, pairs=200)
        print(f"T = {length}: largest relative difference to tslearn (float64): {error:.1e}")
        error = float32_relative_error(length, args.dim, args.gamma, n_clips=100)
        print(f"T = {length}: largest relative difference float32 to float64 (ours): {error:.1e}")
    print(
        f"1,000,000 pairs at T = 16: {million_seconds:.2f} s "
        f"({1e6 / million_seconds:,.0f} pairs/s), peak memory growth {million_peak:.0f} MiB"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Differentiable softDTW (Cuturi & Blondel 2017) of cost matrices.

R_00 = 0, R_i0 = R_0j = +inf, R_ij = C_ij + softmin_gamma(R_i-1,j-1, R_i-1,j, R_i,j-1),
softmin_gamma(a) = -gamma log sum_k exp(-a_k / gamma), D = R_NM. The backward pass is the
explicit expected-alignment recursion (dD/dC = E), not autograd through the recursion, so
gradients cost one more sweep and stay finite at gamma = 0.001. Both passes run in float64
whatever the cost dtype, except float32 CPU costs without a gradient (inference), whose
values come from the float32 sweep of softdtw_float32. CPU tensors go to the numba
kernels, other devices to the torch anti-diagonal sweep; `implementation` forces either.
"""

from functools import lru_cache
from types import ModuleType
from typing import Literal

import torch
from torch.autograd.function import once_differentiable

from pipeline.align import softdtw_float32, softdtw_numba, softdtw_torch

Implementation = Literal["auto", "numba", "torch"]
# Pairs side by side along a cost grid's last axis (B) when the caller picks the layout: a
# multiple of both CPU kernels' LANES, and narrow enough that one pair's N * M costs lie in
# a few memory pages. In a wide grid (B in the thousands) consecutive costs of one pair are
# B apart, each on its own page, and the TLB misses cost more than the sweep itself.
GRID_WIDTH = 64
_KERNELS: dict[str, ModuleType] = {"numba": softdtw_numba, "torch": softdtw_torch}


class _SoftDTWGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost, gamma, band, kernel):  # cost (A, N, M, B) -> (A, B)
        values, tables = kernel.forward(cost, gamma, band, keep_tables=True)
        ctx.save_for_backward(cost, tables)
        ctx.gamma, ctx.band, ctx.kernel = gamma, band, kernel
        return values.to(device=cost.device, dtype=cost.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # (A, B) -> (A, N, M, B)
        cost, tables = ctx.saved_tensors
        grad_cost = ctx.kernel.backward(cost, tables, grad, ctx.gamma, ctx.band)
        return grad_cost.to(device=cost.device, dtype=cost.dtype), None, None, None


@lru_cache(maxsize=256)
def _path_exists(n: int, m: int, band: int) -> bool:
    reach = [[False] * (m + 1) for _ in range(n + 1)]
    reach[0][0] = True
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            inside = band == 0 or abs(i * m - j * n) <= band * m
            reach[i][j] = inside and (reach[i - 1][j - 1] or reach[i - 1][j] or reach[i][j - 1])
    return reach[n][m]


def _check_arguments(cost: torch.Tensor, gamma: float, band: int, implementation: str) -> None:
    if implementation not in ("auto", *_KERNELS):
        raise ValueError(
            f"implementation must be one of auto, {', '.join(_KERNELS)}; got {implementation!r}"
        )
    if cost.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"softDTW needs float32 or float64 costs, got {cost.dtype}")
    if not gamma > 0.0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if isinstance(band, bool) or not isinstance(band, int) or band < 0:
        raise ValueError(f"band must be an integer >= 0 (0 = no band), got {band!r}")
    n, m = cost.shape[1], cost.shape[2]
    if n == 0 or m == 0:
        raise ValueError(f"softDTW needs sequences of at least one frame, got {n} x {m}")
    if band and not _path_exists(n, m, band):
        wide_enough = next(b for b in range(band + 1, n + m) if _path_exists(n, m, b))
        raise ValueError(
            f"band={band} leaves no warping path between sequences of {n} and {m} frames; "
            f"use band >= {wide_enough} or band=0 (no band)"
        )


def soft_dtw_grid(
    cost: torch.Tensor, gamma: float, band: int = 0, implementation: Implementation = "auto"
) -> torch.Tensor:
    """softDTW of every pair of a cost grid (A, N, M, B), pair (a, b) being cost[a, :, :, b].

    This is the layout of 1 - X Y^T for X (A * N, d) and Y (M * B, d) (exemplar frames
    ordered frame-major), so cross distances need no per-pair copy and the kernels read the
    pairs they sweep side by side from contiguous memory. Returns (A, B) in the cost's
    dtype, differentiable in the cost.
    """
    if cost.dim() != 4:
        raise ValueError(f"cost grid must have shape (A, N, M, B), got {tuple(cost.shape)}")
    _check_arguments(cost, gamma, band, implementation)
    if implementation == "auto":
        implementation = "numba" if cost.device.type == "cpu" else "torch"
    if implementation == "numba" and cost.device.type != "cpu":
        raise ValueError(f"the numba implementation runs on CPU tensors, got {cost.device}")
    kernel = _KERNELS[implementation]
    if not (torch.is_grad_enabled() and cost.requires_grad):
        # no graph will be built, so skip the tables only the backward pass reads; float32
        # costs (embeddings at inference) take the vectorised float32 sweep, several times
        # faster and as exact as their float32 result can hold
        if kernel is softdtw_numba and cost.dtype == torch.float32:
            return softdtw_float32.forward(cost, float(gamma), band)
        values, _ = kernel.forward(cost, float(gamma), band, keep_tables=False)
        return values.to(device=cost.device, dtype=cost.dtype)
    return _SoftDTWGrid.apply(cost, float(gamma), band, kernel)


def soft_dtw(
    cost: torch.Tensor, gamma: float, band: int = 0, implementation: Implementation = "auto"
) -> torch.Tensor:
    """softDTW of a batch of cost matrices (B, N, M) -> (B,); N and M may differ.

    band > 0 is a Sakoe-Chiba band: cells with |i - j N / M| > band are unreachable.
    Differentiable in the cost; float32 or float64, any device.
    """
    if cost.dim() != 3:
        raise ValueError(f"cost must have shape (B, N, M), got {tuple(cost.shape)}")
    pairs, n, m = cost.shape
    width = max(1, min(GRID_WIDTH, pairs))
    rows = -(-pairs // width)
    if rows * width != pairs:  # zero costs fill the last row; their values are dropped
        cost = torch.cat([cost, cost.new_zeros(rows * width - pairs, n, m)])
    grid = cost.view(rows, width, n, m).permute(0, 2, 3, 1)  # (rows, N, M, width)
    return soft_dtw_grid(grid, gamma, band, implementation).reshape(-1)[:pairs]

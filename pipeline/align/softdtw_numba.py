"""softDTW on the CPU: numba kernels, run in parallel over sequence pairs.

Every kernel works on a cost grid of shape (A, N, M, B): pair (a, b) is the matrix
cost[a, :, :, b]. The cross distances of A queries and B exemplars come out of one matrix
product already in this layout, so no per-pair copy is made, and the pairs a sweep takes
side by side sit next to each other in memory; a batch of matrices (P, N, M) is the grid
(1, N, M, P). Costs may be float32 or float64; these kernels recurse in float64 (the
float32 sweep for inference is softdtw_float32).
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

# Finite stand-in for +inf: exp(-(UNREACHABLE - r) / gamma) is exactly 0 for any cost a
# recursion meets, yet no inf - inf or 0 * inf can appear, even at gamma = 0.001.
UNREACHABLE = 1e30
# exp(-x) < 2**-53 for x above this: half an ulp of 1.0, so adding it to a float64 sum that
# already holds 1 leaves the same bits. Skipping it is exact, and at gamma = 0.001 almost
# every term of the soft minimum is skipped.
_NEGLIGIBLE = 37.0
# exp(x) is exactly 0.0 in float64 below this.
_UNDERFLOW = -745.2
# Pairs swept side by side: their recursions are independent, so the CPU overlaps them
# instead of waiting on each cell's dependency on its left neighbour.
LANES = 16


@njit(cache=True, inline="always")
def outside_band(i: int, j: int, n: int, m: int, band: int) -> bool:
    # |i - j N / M| > band, in integers so every implementation cuts the same cells.
    return band > 0 and abs(i * m - j * n) > band * m


@njit(cache=True, inline="always")
def _softmin(r0: float, r1: float, r2: float, gamma: float, inv_gamma: float) -> float:
    # -gamma log(exp(-r0 / gamma) + ...) with the minimum taken out: 1 + e1 + e2, e <= 1
    if r1 < r0:
        r0, r1 = r1, r0
    if r2 < r0:
        r0, r2 = r2, r0
    total = 1.0
    x = (r1 - r0) * inv_gamma
    if x < _NEGLIGIBLE:
        total += math.exp(-x)
    x = (r2 - r0) * inv_gamma
    if x < _NEGLIGIBLE:
        total += math.exp(-x)
    if total == 1.0:
        return r0
    return r0 - gamma * math.log(total)


@njit(cache=True, inline="always")
def _sweep(cost, a, b0, width, rows, gamma, inv_gamma, band):
    """Fill the (N + 1, M + 1) tables of pairs (a, b0 + g), g < width, lane g of rows
    (kept, M + 1, LANES); rows holds the tables whole (kept = N + 1) or two rolling rows."""
    n, m = cost.shape[1], cost.shape[2]
    kept = rows.shape[0]
    rows[0, 0, :] = 0.0
    rows[0, 1:, :] = UNREACHABLE
    for i in range(1, n + 1):
        prev = rows[(i - 1) % kept]  # (M + 1, LANES)
        cur = rows[i % kept]  # (M + 1, LANES)
        cur[0, :] = UNREACHABLE
        for j in range(1, m + 1):
            if outside_band(i, j, n, m, band):
                cur[j, :] = UNREACHABLE
                continue
            for g in range(width):
                soft = _softmin(prev[j - 1, g], prev[j, g], cur[j - 1, g], gamma, inv_gamma)
                cur[j, g] = cost[a, i - 1, j - 1, b0 + g] + soft
    return rows[n % kept, m]


@njit(cache=True, nogil=True)
def _values(cost, gamma, band, start, stop, out):
    # groups start..stop of the grid (A, N, M, B) -> out (A, B); two rolling rows per group
    m, n_b = cost.shape[2], cost.shape[3]
    groups = -(-n_b // LANES)
    inv_gamma = 1.0 / gamma
    rows = np.empty((2, m + 1, LANES))
    for q in range(start, stop):
        a, b0 = q // groups, (q % groups) * LANES
        width = min(LANES, n_b - b0)
        out[a, b0 : b0 + width] = _sweep(cost, a, b0, width, rows, gamma, inv_gamma, band)[:width]


@njit(cache=True, nogil=True)
def _values_and_tables(cost, gamma, band, start, stop, out, tables):
    # as _values, keeping the tables (A, groups, N + 1, M + 1, LANES) backward reads
    n_b = cost.shape[3]
    groups = -(-n_b // LANES)
    inv_gamma = 1.0 / gamma
    for q in range(start, stop):
        a, b0 = q // groups, (q % groups) * LANES
        width = min(LANES, n_b - b0)
        rows = tables[a, q % groups]
        out[a, b0 : b0 + width] = _sweep(cost, a, b0, width, rows, gamma, inv_gamma, band)[:width]


@njit(cache=True, inline="always")
def _weight(r_next: float, r: float, c_next: float, inv_gamma: float) -> float:
    # Share of the successor's expected alignment that flows back through (i, j); the
    # exponent is <= 0 up to rounding, and the clamp keeps unreachable successors finite.
    x = min((r_next - r - c_next) * inv_gamma, 0.0)
    if x < _UNDERFLOW:
        return 0.0
    return math.exp(x)


@njit(cache=True, nogil=True)
def _expected_alignment(cost, tables, grad, gamma, band, start, stop, out):
    """E-matrix recursion of Cuturi & Blondel (2017) for pairs start..stop, scaled by the
    incoming gradient, into out (A, N, M, B)."""
    _, n, m, n_b = cost.shape
    inv_gamma = 1.0 / gamma
    for p in range(start, stop):
        a, b = p // n_b, p % n_b
        r = tables[a, b // LANES, :, :, b % LANES]  # (N + 1, M + 1)
        below = np.zeros(m + 2)  # E of row i + 1, overwritten in place by row i
        for i in range(n, 0, -1):
            below_right = 0.0
            right = 0.0
            for j in range(m, 0, -1):
                e = 0.0
                if i == n and j == m:
                    e = 1.0
                elif not outside_band(i, j, n, m, band):
                    rij = r[i, j]
                    if i < n and below[j] != 0.0:
                        e += below[j] * _weight(r[i + 1, j], rij, cost[a, i, j - 1, b], inv_gamma)
                    if j < m and right != 0.0:
                        e += right * _weight(r[i, j + 1], rij, cost[a, i - 1, j, b], inv_gamma)
                    if i < n and j < m and below_right != 0.0:
                        e += below_right * _weight(
                            r[i + 1, j + 1], rij, cost[a, i, j, b], inv_gamma
                        )
                below_right = below[j]
                below[j] = e
                right = e
                out[a, i - 1, j - 1, b] = e * grad[a, b]


def in_parallel(kernel, items: int, inputs: tuple, outputs: tuple) -> None:
    """Run kernel(*inputs, start, stop, *outputs) over items 0..items in chunks, on torch's
    thread budget. Plain threads that block when idle, not a second OpenMP pool: pools that
    spin while waiting would steal the cores torch's own pool is about to use, and back."""
    threads = min(torch.get_num_threads(), items)
    if threads <= 1:
        kernel(*inputs, 0, items, *outputs)
        return
    chunks = min(items, 4 * threads)  # several per thread: a busy core does not hold up the rest
    bounds = [items * c // chunks for c in range(chunks + 1)]
    with ThreadPoolExecutor(threads) as pool:
        done = [
            pool.submit(kernel, *inputs, bounds[c], bounds[c + 1], *outputs) for c in range(chunks)
        ]
        for future in done:
            future.result()


def forward(
    cost: torch.Tensor, gamma: float, band: int, keep_tables: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softDTW of every pair of a CPU cost grid (A, N, M, B): values (A, B) in float64, and
    the accumulated-cost tables (A, groups of LANES, N + 1, M + 1, LANES) when keep_tables."""
    grid = cost.detach().contiguous().numpy()
    n_a, n, m, n_b = grid.shape
    groups = -(-n_b // LANES)
    values = np.empty((n_a, n_b))
    if not keep_tables:
        in_parallel(_values, n_a * groups, (grid, float(gamma), int(band)), (values,))
        return torch.from_numpy(values), None
    tables = np.empty((n_a, groups, n + 1, m + 1, LANES))
    inputs = (grid, float(gamma), int(band))
    in_parallel(_values_and_tables, n_a * groups, inputs, (values, tables))
    return torch.from_numpy(values), torch.from_numpy(tables)


def backward(
    cost: torch.Tensor, tables: torch.Tensor, grad: torch.Tensor, gamma: float, band: int
) -> torch.Tensor:
    """Gradient (A, N, M, B), float64, of sum(grad * softDTW) with respect to the cost grid."""
    grid = cost.detach().contiguous().numpy()
    out = np.empty(grid.shape)
    weights = grad.detach().to(torch.float64).contiguous().numpy()
    pairs = grid.shape[0] * grid.shape[3]
    inputs = (grid, tables.numpy(), weights, float(gamma), int(band))
    in_parallel(_expected_alignment, pairs, inputs, (out,))
    return torch.from_numpy(out)

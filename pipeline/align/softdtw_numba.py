"""softDTW on the CPU: numba kernels, run in parallel over groups of sequence pairs.

Every kernel works on a cost grid of shape (A, N, M, B): pair (a, b) is the matrix
cost[a, :, :, b]. The cross distances of A queries and B exemplars come out of one matrix
product already in this layout, so no per-pair copy is made, and the pairs a sweep takes
side by side sit next to each other in memory; a batch of matrices (P, N, M) is the grid
(1, N, M, P). Costs may be float32 or float64; these kernels recurse in float64 (the
float32 sweep for inference is softdtw_float32).

Both sweeps are branch-free across the LANES pairs they take side by side: every lane of a
cell runs the same instructions (the minimum of three, exp2 and log1p written as
polynomials good to about one float64 ulp), so the loop over the lanes compiles to AVX
vector instructions. A scalar sweep that skips the exponentials a float64 sum cannot feel
is no faster: its mispredicted branches and library calls cost more than the skipped work.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# Finite stand-in for +inf: exp(-(UNREACHABLE - r) / gamma) is exactly 0 for any cost a
# recursion meets, yet no inf - inf or 0 * inf can appear, even at gamma = 0.001.
UNREACHABLE = 1e30
# Pairs swept side by side: four 8-wide float64 vectors in flight hide the latency of one
# cell's soft minimum behind the others' (16 and 64 ran slower).
LANES = 32
# exp2 below this exponent is taken as 0: 2**-1000 moves nothing a softDTW value or an
# expected alignment can hold, and the cut keeps every product clear of subnormal numbers,
# which cost the CPU a hundred cycles each.
_FLOOR = -1000.0
_SQRT2 = math.sqrt(2.0)
_LN2 = math.log(2.0)
# 2**f = exp(f ln 2) on |f| <= 1/2 by its Taylor series to degree 12: remainder < 2.5e-16
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12 = (
    _LN2**k / math.factorial(k) for k in range(13)
)
# log(x) = 2 atanh(s), s = (x - 1) / (x + 1), |s| <= 1/5 after the reduction below:
# 2 sum s**(2k + 1) / (2k + 1) to k = 10, remainder < 1e-15 relative
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8, _L9, _L10 = (2.0 / (2 * k + 1) for k in range(11))


@njit(cache=True, inline="always")
def outside_band(i: int, j: int, n: int, m: int, band: int) -> bool:
    # |i - j N / M| > band, in integers so every implementation cuts the same cells.
    return band > 0 and abs(i * m - j * n) > band * m


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose bit pattern is a 64-bit integer's (C++'s bit_cast)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _exp2(y):
    # 2**y for y <= 0 (0 below _FLOOR): 2**k, built in the exponent bits, times 2**f, |f| <= 1/2
    y_in_range = max(y, _FLOOR)
    k = np.floor(y_in_range + 0.5)
    f = y_in_range - k
    p = _E10 + f * (_E11 + f * _E12)
    p = _E6 + f * (_E7 + f * (_E8 + f * (_E9 + f * p)))
    p = _E0 + f * (_E1 + f * (_E2 + f * (_E3 + f * (_E4 + f * (_E5 + f * p)))))
    return p * _float64_from_bits((np.int64(k) + 1023) << 52) if y >= _FLOOR else 0.0


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _log1p(u):
    # log(1 + u) for 0 <= u <= 2: halve 1 + u above sqrt 2, so that x lies in [0.7, 1.5]
    x = 1.0 + u
    halved = x > _SQRT2
    x = x * 0.5 if halved else x
    s = (x - 1.0) / (x + 1.0)
    z = s * s
    p = _L6 + z * (_L7 + z * (_L8 + z * (_L9 + z * _L10)))
    p = _L0 + z * (_L1 + z * (_L2 + z * (_L3 + z * (_L4 + z * (_L5 + z * p)))))
    return s * p + (_LN2 if halved else 0.0)


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _softmin(r0, r1, r2, gamma, scale):
    # -gamma log(exp(-r0 / gamma) + ...) as min - gamma log1p(two terms <= 1); sorting with
    # min/max instead of branches, scale = log2(e) / gamma
    low, high = min(r0, r1), max(r0, r1)
    lowest, other = min(low, r2), max(low, r2)
    u = _exp2((lowest - high) * scale) + _exp2((lowest - other) * scale)
    return lowest - gamma * _log1p(u)


# fastmath "contract" only fuses a * b + c into one rounding (FMA), which cannot create NaN
# or inf; error_model="numpy" drops the division-by-zero check (x + 1 >= 1.7) whose branch
# would keep the lane loop scalar.
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _sweep(cost, gamma, scale, band, keep, start, stop, out, tables):
    """Groups start..stop of LANES pairs of the grid (A, N, M, B) -> out (A, B). When keep,
    every row also goes to tables (2, A, groups, N + 1, M + 1, LANES): [0] the accumulated
    costs R, [1] their soft minima R - C, which spare the backward pass reading the costs."""
    _, n, m, n_b = cost.shape
    groups = -(-n_b // LANES)
    prev = np.empty((m + 1, LANES))
    cur = np.empty((m + 1, LANES))
    soft = np.full((m + 1, LANES), UNREACHABLE)
    # The cell to the left is read from its own buffer, not from cur: with cur[j - 1] and
    # cur[j] in one array the compiler cannot rule out overlap and keeps the loop scalar.
    left = np.empty(LANES)
    for q in range(start, stop):
        a, group, b0 = q // groups, q % groups, (q % groups) * LANES
        width = min(LANES, n_b - b0)
        prev[0, :] = 0.0
        prev[1:, :] = UNREACHABLE
        if keep:
            tables[0, a, group, 0] = prev
            tables[1, a, group, 0] = prev
        for i in range(1, n + 1):
            cur[0, :] = UNREACHABLE
            left[:] = UNREACHABLE
            for j in range(1, m + 1):
                if outside_band(i, j, n, m, band):
                    left[:] = UNREACHABLE
                    cur[j, :] = UNREACHABLE
                    soft[j, :] = UNREACHABLE
                    continue
                c = cost[a, i - 1, j - 1, b0 : b0 + width]  # (width,)
                for g in range(width):
                    soft[j, g] = _softmin(prev[j - 1, g], prev[j, g], left[g], gamma, scale)
                    left[g] = c[g] + soft[j, g]
                    cur[j, g] = left[g]
            if keep:
                tables[0, a, group, i] = cur
                tables[1, a, group, i] = soft
            prev, cur = cur, prev
        out[a, b0 : b0 + width] = prev[m, :width]


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _weights(soft_next, r, scale, width, out):
    # out[j, g] = exp(min(soft_next - r, 0) / gamma) over a row: the share of a successor's
    # expected alignment that flows back through the cell (R_next - C_next - R_ij <= 0 up to
    # rounding; the clamp keeps unreachable successors finite). A loop of its own, with one
    # array written, so that it compiles to vector code.
    for j in range(out.shape[0]):
        for g in range(width):
            out[j, g] = _exp2(min((soft_next[j, g] - r[j, g]) * scale, 0.0))


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _expected_alignment(tables, grad, scale, band, start, stop, out):
    """E-matrix recursion of Cuturi & Blondel (2017) for groups start..stop of LANES pairs,
    scaled by the incoming gradient (A, B), into out (A, N, M, B) of the costs' dtype.

    E[i, j] = E[i, j + 1] w_right + E[i + 1, j] w_below + E[i + 1, j + 1] w_diagonal, with
    w = exp((R_next - C_next - R_ij) / gamma); the weights of a row are computed first, in
    vectorised passes over the tables alone, then the recursion along the row is three
    multiply-adds a cell."""
    _, n, m, n_b = out.shape
    groups = -(-n_b // LANES)
    below = np.zeros((m + 2, LANES))  # E of row i + 1, columns 0..M + 1
    here = np.zeros((m + 2, LANES))  # E of row i
    w_right = np.zeros((m + 1, LANES))  # weights of the cells (i, j), index j - 1
    w_below = np.zeros((m + 1, LANES))
    w_diagonal = np.zeros((m + 1, LANES))
    right = np.empty(LANES)
    for q in range(start, stop):
        a, group, b0 = q // groups, q % groups, (q % groups) * LANES
        width = min(LANES, n_b - b0)
        r = tables[0, a, group]  # (N + 1, M + 1, LANES)
        soft = tables[1, a, group]  # (N + 1, M + 1, LANES)
        below[:, :] = 0.0
        for i in range(n, 0, -1):
            # successors outside the table have E = 0 (below and here are zero there), so
            # the weights left stale for them multiply zeros
            if m > 1:
                _weights(soft[i, 2:], r[i, 1:m], scale, width, w_right[: m - 1])
            if i < n:
                _weights(soft[i + 1, 1:], r[i, 1:], scale, width, w_below[:m])
                if m > 1:
                    _weights(soft[i + 1, 2:], r[i, 1:m], scale, width, w_diagonal[: m - 1])
            here[m + 1, :] = 0.0
            right[:] = 0.0
            for j in range(m, 0, -1):
                if i == n and j == m:
                    right[:] = 1.0
                elif outside_band(i, j, n, m, band):
                    right[:] = 0.0
                else:
                    for g in range(width):
                        right[g] = (
                            right[g] * w_right[j - 1, g]
                            + below[j, g] * w_below[j - 1, g]
                            + below[j + 1, g] * w_diagonal[j - 1, g]
                        )
                here[j, :] = right
            for j in range(1, m + 1):
                for g in range(width):  # a loop, not here[j] * grad: no temporary array
                    out[a, i - 1, j - 1, b0 + g] = here[j, g] * grad[a, b0 + g]
            below, here = here, below


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


def _scale(gamma: float) -> float:
    # log2(e) / gamma; below gamma ~ 1e-308 it overflows, and the largest finite scale still
    # sends every nonzero gap to _FLOOR, which is the exact answer there
    return min(math.log2(math.e) / gamma, float(np.finfo(np.float64).max))


def forward(
    cost: torch.Tensor, gamma: float, band: int, keep_tables: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softDTW of every pair of a CPU cost grid (A, N, M, B): values (A, B) in float64, and
    when keep_tables the tables (2, A, groups of LANES, N + 1, M + 1, LANES) of accumulated
    costs and their soft minima the backward pass reads."""
    grid = cost.detach().contiguous().numpy()
    n_a, n, m, n_b = grid.shape
    groups = -(-n_b // LANES)
    values = np.empty((n_a, n_b))
    shape = (2, n_a, groups, n + 1, m + 1, LANES) if keep_tables else (1, 1, 1, 1, 1, 1)
    tables = np.empty(shape)
    inputs = (grid, float(gamma), _scale(gamma), int(band), keep_tables)
    in_parallel(_sweep, n_a * groups, inputs, (values, tables))
    return torch.from_numpy(values), (torch.from_numpy(tables) if keep_tables else None)


def backward(
    cost: torch.Tensor, tables: torch.Tensor, grad: torch.Tensor, gamma: float, band: int
) -> torch.Tensor:
    """Gradient (A, N, M, B), in the costs' dtype, of sum(grad * softDTW) with respect to
    the cost grid."""
    out = torch.empty(cost.shape, dtype=cost.dtype)
    weights = grad.detach().to(torch.float64).contiguous().numpy()
    groups = cost.shape[0] * -(-cost.shape[3] // LANES)
    inputs = (tables.numpy(), weights, _scale(gamma), int(band))
    in_parallel(_expected_alignment, groups, inputs, (out.numpy(),))
    return out

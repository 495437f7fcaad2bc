"""softDTW values in float32 for inference: a branch-free sweep the compiler vectorises.

The float64 kernels (softdtw_numba) are built the same way, with longer polynomials and
eight lanes to a vector instead of sixteen; for float32 costs without a gradient this
sweep is about twice as fast again. Every cell of every lane takes the same path: the
minimum of three, two exp2 and one log1p written as polynomials, so the loop over the lanes
(pairs side by side, contiguous in the (A, N, M, B) grid) compiles to vector instructions.

Accuracy: the polynomials are fitted on Chebyshev nodes over their whole input range and
are within 3e-7 relative of exp2 and log1p, so the soft minimum is off by at most about
gamma 1e-6, below the rounding of the float32 sums it is added to; values agree with the
float64 recursion to 1e-6 relative (tests/test_softdtw.py). Only for float32 costs and no
gradient: training and float64 inputs keep the float64 kernels.
"""

import math

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# numba's on-disk cache follows this file only: after editing outside_band or UNREACHABLE,
# delete pipeline/align/__pycache__ so that the sweep below is compiled anew with them
from pipeline.align.softdtw_numba import UNREACHABLE, in_parallel, outside_band

# Pairs swept side by side: enough 8-wide vectors in flight to hide the latency of one
# cell's soft minimum behind the others' (32 and 128 ran no faster).
LANES = 64
# exp2 below this exponent is taken as 0: a term < 2**-40 moves the soft minimum by less
# than gamma 2**-40, far below float32 resolution, and dropping it keeps every later
# product clear of subnormal numbers, which cost the CPU a hundred cycles each.
_FLOOR = np.float32(-40.0)
# float32 constants, so that numba does not promote the sweep to float64 (a Python float
# constant is a float64)
_UNREACHABLE = np.float32(UNREACHABLE)
_ZERO, _TWO, _HALF = np.float32(0.0), np.float32(2.0), np.float32(0.5)
# 2**f on [-0.5, 0.5], degree 5, relative error 2.5e-7
_E0, _E1, _E2, _E3, _E4, _E5 = (
    np.float32(c)
    for c in (1.0000001192, 0.6931471825, 0.2402210683, 0.0555032715, 0.0096760374, 0.0013400433)
)
# 2 atanh(s) / s as a polynomial in s**2 on [0, 1/4], degree 5; log1p(u) = 2 atanh(u / (2 + u))
_L0, _L1, _L2, _L3, _L4, _L5 = (
    np.float32(c)
    for c in (2.0, 0.6666779518, 0.3994882405, 0.2940806150, 0.1620839834, 0.3675324023)
)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of an integer (C++'s bit_cast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _exp2(y):
    # 2**y for y <= 0 (0 below _FLOOR): 2**k, built in the exponent bits, times 2**f, |f| <= 1/2
    y_in_range = max(y, _FLOOR)
    k = np.floor(y_in_range + _HALF)
    f = y_in_range - k
    p = _E0 + f * (_E1 + f * (_E2 + f * (_E3 + f * (_E4 + f * _E5))))
    return p * _float32_from_bits((np.int32(k) + 127) << 23) if y >= _FLOOR else _ZERO


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _log1p(u):
    # log(1 + u) for 0 <= u <= 2, no range reduction needed since s = u / (2 + u) <= 1/2
    s = u / (_TWO + u)
    z = s * s
    return s * (_L0 + z * (_L1 + z * (_L2 + z * (_L3 + z * (_L4 + z * _L5)))))


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _softmin(r0, r1, r2, gamma, scale):
    # -gamma log(exp(-r0 / gamma) + ...) as min - gamma log1p(two terms <= 1); sorting with
    # min/max instead of branches, scale = log2(e) / gamma
    low, high = min(r0, r1), max(r0, r1)
    lowest, other = min(low, r2), max(low, r2)
    u = _exp2((lowest - high) * scale) + _exp2((lowest - other) * scale)
    return lowest - gamma * _log1p(u)


# fastmath "contract" only fuses a * b + c into one rounding (FMA), which cannot create NaN
# or inf; error_model="numpy" drops the division-by-zero check (2 + u >= 2) whose branch
# would keep the lane loop scalar.
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _values(cost, gamma, scale, band, start, stop, out):
    # groups start..stop of LANES pairs of the grid (A, N, M, B) -> out (A, B), float32
    _, n, m, n_b = cost.shape
    groups = -(-n_b // LANES)
    prev = np.empty((m + 1, LANES), np.float32)
    cur = np.empty((m + 1, LANES), np.float32)
    # The cell to the left is read from its own buffer, not from cur: with cur[j - 1] and
    # cur[j] in one array the compiler cannot rule out overlap and keeps the loop scalar.
    left = np.empty(LANES, np.float32)
    for q in range(start, stop):
        a, b0 = q // groups, (q % groups) * LANES
        width = min(LANES, n_b - b0)
        prev[0, :] = 0.0
        prev[1:, :] = _UNREACHABLE
        for i in range(1, n + 1):
            cur[0, :] = _UNREACHABLE
            left[:] = _UNREACHABLE
            for j in range(1, m + 1):
                if outside_band(i, j, n, m, band):
                    left[:] = _UNREACHABLE
                    cur[j, :] = _UNREACHABLE
                    continue
                c = cost[a, i - 1, j - 1, b0 : b0 + width]  # (width,)
                for g in range(width):
                    left[g] = c[g] + _softmin(prev[j - 1, g], prev[j, g], left[g], gamma, scale)
                    cur[j, g] = left[g]
            prev, cur = cur, prev
        out[a, b0 : b0 + width] = prev[m, :width]


def forward(cost: torch.Tensor, gamma: float, band: int) -> torch.Tensor:
    """softDTW values (A, B), float32, of every pair of a float32 CPU cost grid (A, N, M, B)."""
    grid = cost.detach().contiguous().numpy()
    n_a, n_b = grid.shape[0], grid.shape[3]
    values = np.empty((n_a, n_b), np.float32)
    # below gamma ~ 1e-38 log2(e) / gamma overflows float32; the largest finite scale still
    # sends every nonzero gap to _FLOOR, which is the exact answer there
    scale = np.float32(min(math.log2(math.e) / gamma, float(np.finfo(np.float32).max)))
    inputs = (grid, np.float32(gamma), scale, int(band))
    in_parallel(_values, n_a * -(-n_b // LANES), inputs, (values,))
    return torch.from_numpy(values)

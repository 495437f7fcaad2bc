"""softDTW as an anti-diagonal sweep in plain torch: the path for CUDA, correct on any device.

Cells on one anti-diagonal i + j = k depend only on the two diagonals before, so each step
updates a whole diagonal of every pair at once: N + M - 1 vectorised steps instead of N * M
scalar ones. Tables are stored skewed, row k holding diagonal k indexed by i, so the three
neighbours of a diagonal are plain slices. Same conventions as the numba kernels: cost grid
(A, N, M, B), float64 recursion, the finite UNREACHABLE sentinel, integer band test.
"""

import torch

from pipeline.align.softdtw_numba import UNREACHABLE


def _skew_index(n: int, m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat index into a padded (N + 2, M + 2) table for every skewed slot (k, i), k in
    0..N + M + 2, i in 0..N + 1, and whether that slot is a real cell 1 <= i <= N, 1 <= j <= M."""
    k = torch.arange(n + m + 3, device=device).unsqueeze(1)  # (K, 1)
    i = torch.arange(n + 2, device=device).unsqueeze(0)  # (1, N + 2)
    j = k - i  # (K, N + 2)
    inside = (i >= 1) & (i <= n) & (j >= 1) & (j <= m)
    flat = i * (m + 2) + j.clamp(0, m + 1)
    return flat, inside


def _skew(table: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    # (P, N + 2, M + 2) -> (P, K, N + 2)
    pairs = table.shape[0]
    return table.reshape(pairs, -1)[:, flat.reshape(-1)].reshape(pairs, *flat.shape)


def _padded_cost(cost: torch.Tensor) -> torch.Tensor:
    # (A, N, M, B) -> (P, N + 2, M + 2) float64, zero outside the cells
    n_a, n, m, n_b = cost.shape
    pairs = cost.detach().permute(0, 3, 1, 2).reshape(n_a * n_b, n, m).to(torch.float64)
    return torch.nn.functional.pad(pairs, (1, 1, 1, 1))


def _band_mask(n: int, m: int, band: int, flat: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    # (K, N + 2): skewed slots that are cells inside the band
    if band == 0:
        return inside
    i = flat // (m + 2)
    j = flat % (m + 2)
    return inside & ((i * m - j * n).abs() <= band * m)


def forward(
    cost: torch.Tensor, gamma: float, band: int, keep_tables: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softDTW of every pair of a cost grid (A, N, M, B): values (A, B) in float64 and, when
    keep_tables, the skewed accumulated-cost tables (P, K, N + 2) the backward pass reads."""
    n_a, n, m, n_b = cost.shape
    flat, inside = _skew_index(n, m, cost.device)
    allowed = _band_mask(n, m, band, flat, inside)
    c = _skew(_padded_cost(cost), flat)  # (P, K, N + 2)
    r = torch.full_like(c, UNREACHABLE)  # (P, K, N + 2)
    r[:, 0, 0] = 0.0
    for k in range(2, n + m + 1):
        lo, hi = max(1, k - m), min(n, k - 1)
        diag = r[:, k - 2, lo - 1 : hi]  # (P, L): cells (i - 1, j - 1)
        up = r[:, k - 1, lo - 1 : hi]  # (P, L): cells (i - 1, j)
        left = r[:, k - 1, lo : hi + 1]  # (P, L): cells (i, j - 1)
        lowest = torch.minimum(torch.minimum(diag, up), left)
        total = (
            torch.exp((lowest - diag) / gamma)
            + torch.exp((lowest - up) / gamma)
            + torch.exp((lowest - left) / gamma)
        )
        value = c[:, k, lo : hi + 1] + lowest - gamma * torch.log(total)
        r[:, k, lo : hi + 1] = torch.where(allowed[k, lo : hi + 1], value, UNREACHABLE)
    values = r[:, n + m, n].reshape(n_a, n_b)
    return values, (r if keep_tables else None)


def backward(
    cost: torch.Tensor, tables: torch.Tensor, grad: torch.Tensor, gamma: float, band: int
) -> torch.Tensor:
    """Gradient (A, N, M, B), float64, of sum(grad * softDTW) with respect to the cost grid:
    the E-matrix recursion of Cuturi & Blondel (2017), one anti-diagonal at a time."""
    n_a, n, m, n_b = cost.shape
    flat, inside = _skew_index(n, m, cost.device)
    allowed = _band_mask(n, m, band, flat, inside)
    c = _skew(_padded_cost(cost), flat)  # (P, K, N + 2)
    r = tables  # (P, K, N + 2)
    e = torch.zeros_like(r)  # (P, K, N + 2); zero on every slot that is not a cell
    e[:, n + m, n] = 1.0

    def flow(e_next: torch.Tensor, r_next: torch.Tensor, c_next: torch.Tensor, r_here):
        # The exponent is <= 0 up to rounding; the clamp keeps unreachable successors finite.
        return e_next * torch.exp(((r_next - r_here - c_next) / gamma).clamp(max=0.0))

    for k in range(n + m - 1, 1, -1):
        lo, hi = max(1, k - m), min(n, k - 1)
        here = r[:, k, lo : hi + 1]  # (P, L)
        same, shifted = slice(lo, hi + 1), slice(lo + 1, hi + 2)  # rows i and i + 1
        total = (
            flow(e[:, k + 1, shifted], r[:, k + 1, shifted], c[:, k + 1, shifted], here)  # (i+1, j)
            + flow(e[:, k + 1, same], r[:, k + 1, same], c[:, k + 1, same], here)  # (i, j+1)
            + flow(e[:, k + 2, shifted], r[:, k + 2, shifted], c[:, k + 2, shifted], here)
        )  # (P, L)
        e[:, k, same] = torch.where(allowed[k, same], total, 0.0)
    # unskew: the cell (i, j) of pair p sits at skewed slot (i + j, i)
    cells = torch.zeros(e.shape[0], (n + 2) * (m + 2), dtype=e.dtype, device=e.device)
    cells[:, flat[inside]] = e[:, inside]
    cells = cells.reshape(n_a, n_b, n + 2, m + 2)[:, :, 1 : n + 1, 1 : m + 1]  # (A, B, N, M)
    cells = cells * grad.to(torch.float64).reshape(n_a, n_b, 1, 1)
    return cells.permute(0, 2, 3, 1)  # (A, N, M, B)

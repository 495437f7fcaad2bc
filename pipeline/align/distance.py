"""Distances between clips of frame embeddings: softDTW on the cosine cost, and the two
alignment-free cosine distances the paper compares it with (its Table 8)."""

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.align.softdtw import GRID_WIDTH, Implementation, soft_dtw_grid

DistanceKind = Literal["softdtw", "pooled_cosine", "framewise_cosine"]


def _check_clips(queries: torch.Tensor, exemplars: torch.Tensor) -> None:
    if queries.dim() != 3 or exemplars.dim() != 3:
        raise ValueError(
            "clips must have shape (clips, frames, dim), got queries "
            f"{tuple(queries.shape)} and exemplars {tuple(exemplars.shape)}"
        )
    if queries.shape[2] != exemplars.shape[2]:
        raise ValueError(
            f"queries and exemplars differ in embedding size: {queries.shape[2]} vs "
            f"{exemplars.shape[2]}"
        )


def _blocks(n_queries: int, n_exemplars: int, block_pairs: int) -> tuple[int, int]:
    exemplars = max(1, min(n_exemplars, block_pairs, GRID_WIDTH))
    queries = max(1, min(n_queries, block_pairs // exemplars))
    return queries, exemplars


def soft_dtw_cross(
    queries: torch.Tensor,
    exemplars: torch.Tensor,
    gamma: float,
    band: int = 0,
    block_pairs: int = 8192,
    implementation: Implementation = "auto",
    progress: bool = False,
) -> torch.Tensor:
    """softDTW with cost 1 - cos(q_i, e_j) for every query x exemplar pair: (Nq, T, d) x
    (Ne, T2, d) -> (Nq, Ne), differentiable in both inputs.

    The cost of a block of pairs is one matrix product whose output already has the
    (queries, T, T2, exemplars) layout the kernels read, with at most GRID_WIDTH exemplars
    (see there why); block_pairs bounds the pairs in flight, hence the memory
    (block_pairs * T * T2 costs, plus float64 tables under grad).
    """
    _check_clips(queries, exemplars)
    if block_pairs < 1:
        raise ValueError(f"block_pairs must be >= 1, got {block_pairs}")
    n_q, t_q, dim = queries.shape
    n_e, t_e, _ = exemplars.shape
    q = F.normalize(queries, dim=-1).reshape(n_q * t_q, dim)  # (Nq * T, d)
    if n_q == 0 or n_e == 0:
        return q.new_zeros((n_q, n_e))
    e = F.normalize(exemplars, dim=-1).transpose(0, 1)  # (T2, Ne, d)
    one = torch.ones((), dtype=q.dtype, device=q.device)
    step_q, step_e = _blocks(n_q, n_e, block_pairs)
    # frame-major exemplar blocks (T2 * be, d), made once, used by every block of queries
    e_blocks = [e[:, j : j + step_e].reshape(-1, dim) for j in range(0, n_e, step_e)]
    # Without a graph to keep them for, every block's costs go to one buffer: a fresh block
    # each time lets the allocator's free list fragment and the heap creep upward.
    reuse = not (torch.is_grad_enabled() and (q.requires_grad or e.requires_grad))
    buffer = q.new_empty(step_q * t_q * step_e * t_e) if reuse else None
    rows = []
    n_blocks = -(-n_q // step_q) * len(e_blocks)
    with tqdm(total=n_blocks, desc="softDTW", unit="block", disable=not progress) as bar:
        for i in range(0, n_q, step_q):
            q_block = q[i * t_q : (i + step_q) * t_q]  # (bq * T, d)
            row = []
            for e_block in e_blocks:
                shape = (q_block.shape[0], e_block.shape[0])
                out = buffer[: shape[0] * shape[1]].view(shape) if reuse else None
                cost = torch.addmm(one, q_block, e_block.T, alpha=-1.0, out=out)  # (bq*T, T2*be)
                grid = cost.view(shape[0] // t_q, t_q, t_e, shape[1] // t_e)  # (bq, T, T2, be)
                row.append(soft_dtw_grid(grid, gamma, band, implementation))  # (bq, be)
                bar.update()
            rows.append(torch.cat(row, dim=1))
    return torch.cat(rows, dim=0)


def pairwise_distance(
    queries: torch.Tensor,
    exemplars: torch.Tensor,
    kind: DistanceKind,
    gamma: float,
    band: int = 0,
) -> torch.Tensor:
    """Distance of every query x exemplar clip, (Nq, T, d) x (Ne, T2, d) -> (Nq, Ne).

    softdtw: softDTW of the cosine cost (sums T to T + T2 - 1 costs along the soft path);
    pooled_cosine: 1 - cos of the temporally mean-pooled features (ignores frame order);
    framewise_cosine: mean over t of 1 - cos(q_t, e_t), no alignment (needs T == T2).
    gamma and band apply to softdtw only. Differentiable.
    """
    _check_clips(queries, exemplars)
    if kind == "softdtw":
        return soft_dtw_cross(queries, exemplars, gamma, band)
    if kind == "pooled_cosine":
        q = F.normalize(queries.mean(dim=1), dim=-1)  # (Nq, d)
        e = F.normalize(exemplars.mean(dim=1), dim=-1)  # (Ne, d)
        return 1.0 - q @ e.T
    if kind == "framewise_cosine":
        if queries.shape[1] != exemplars.shape[1]:
            raise ValueError(
                "framewise_cosine compares frame t with frame t and needs clips of equal "
                f"length, got {queries.shape[1]} and {exemplars.shape[1]} frames"
            )
        q = F.normalize(queries, dim=-1).flatten(1)  # (Nq, T * d)
        e = F.normalize(exemplars, dim=-1).flatten(1)  # (Ne, T * d)
        return 1.0 - q @ e.T / queries.shape[1]
    raise ValueError(
        f"distance kind must be one of {', '.join(get_args(DistanceKind))}; got {kind!r}"
    )


def typical_distance(kind: DistanceKind, frames: int) -> float:
    """Scale of pairwise_distance(kind) for clips of `frames` frames: softDTW adds about one
    cosine cost (in [0, 2]) per frame, the cosine distances are single costs."""
    if kind not in get_args(DistanceKind):
        raise ValueError(
            f"distance kind must be one of {', '.join(get_args(DistanceKind))}; got {kind!r}"
        )
    return float(frames) if kind == "softdtw" else 1.0

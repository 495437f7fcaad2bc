"""GITDL: Gaussian-infused temporal distinctiveness learning, the self-supervised objective
that pretrains the alignability encoder (paper, supplementary E.1).

Frame i of the global clip should match frame i of the local clip and not the other shared
frames; a negative j is weighted by w_ij = 1 - beta exp(-(t_i - t_j)^2 / (2 sigma^2)), so
frames close in time to the anchor are only weak negatives and the embedding stays smooth.
"""

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import GitdlParams
from pipeline.precision import full_precision


def _one_direction(
    sim: torch.Tensor, log_weights: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Mean over valid anchors i of -log(e^s_ii / (e^s_ii + sum_{j != i} w_ij e^s_ij)) per
    video; sim[b, i, j] scores anchor i against candidate j. (B, n, n) -> (B,)."""
    n = sim.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)  # (n, n)
    logits = torch.where(eye, sim, sim + log_weights)  # (B, n, n)
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))  # padded candidates
    positive = sim.diagonal(dim1=1, dim2=2)  # (B, n)
    per_anchor = torch.logsumexp(logits, dim=2) - positive  # (B, n)
    per_anchor = per_anchor.masked_fill(~valid, 0.0)
    return per_anchor.sum(dim=1) / valid.sum(dim=1)  # (B,)


def gitdl_loss(
    z_global: torch.Tensor,
    z_local: torch.Tensor,
    timestamps: torch.Tensor,
    valid: torch.Tensor,
    *,
    tau: float,
    beta: float,
    sigma: float,
) -> torch.Tensor:
    """GITDL loss of a batch, averaged over both directions (G to L, L to G) and videos.

    z_global, z_local: (B, n, d) projected embeddings of the frames both clips share, in the
    same order; timestamps: (B, n) frame times normalised to [0, 1] by video length;
    valid: (B, n) bool, False on padding (videos share different numbers of frames).
    Videos without any valid frame are left out; at least one video must have one.
    """
    if z_global.shape != z_local.shape or z_global.dim() != 3:
        raise ValueError(
            "z_global and z_local must both have shape (B, n, d), got "
            f"{tuple(z_global.shape)} and {tuple(z_local.shape)}"
        )
    if timestamps.shape != z_global.shape[:2] or valid.shape != z_global.shape[:2]:
        raise ValueError(
            f"timestamps {tuple(timestamps.shape)} and valid {tuple(valid.shape)} must have "
            f"shape (B, n) = {tuple(z_global.shape[:2])}"
        )
    valid = valid.bool()
    used = valid.any(dim=1)  # (B,)
    if not bool(used.any()):
        raise ValueError("GITDL needs at least one video with a frame shared by both clips")
    g = F.normalize(z_global[used], dim=-1)  # (B', n, d)
    loc = F.normalize(z_local[used], dim=-1)  # (B', n, d)
    t = timestamps[used].to(g.dtype)  # (B', n)
    mask = valid[used]  # (B', n)
    sim = g @ loc.transpose(1, 2) / tau  # (B', n, n): sim[b, i, j] = cos(zG_i, zL_j) / tau
    gap = t[:, :, None] - t[:, None, :]  # (B', n, n)
    weights = 1.0 - beta * torch.exp(-gap.square() / (2.0 * sigma**2))  # (B', n, n)
    log_weights = torch.log(weights)  # -inf where w = 0 (beta = 1, equal times): no negative
    global_to_local = _one_direction(sim, log_weights, mask)  # (B',)
    local_to_global = _one_direction(sim.transpose(1, 2), log_weights, mask)  # w is symmetric
    return 0.5 * (global_to_local + local_to_global).mean()


def _shared(z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Pick the shared frames out of a clip's projections: (B, T, p), (B, n) -> (B, n, p)."""
    return z.gather(1, positions[..., None].expand(-1, -1, z.shape[-1]))


class GitdlObjective(nn.Module):
    """A batch of global/local pairs -> the GITDL loss on the frames both clips share."""

    def __init__(self, encoder: nn.Module, gitdl: GitdlParams) -> None:
        super().__init__()
        self.encoder, self.gitdl = encoder, gitdl

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # One pass over both views keeps BatchNorm statistics common to them.
        clips = torch.cat([batch["global"], batch["local"]])  # (2B, 3, T, H, W)
        z_global, z_local = (
            self.encoder.project(self.encoder(clips)).float().chunk(2)
        )  # (B, T, p) each
        with full_precision(clips.device):
            loss = gitdl_loss(
                _shared(z_global, batch["global_pos"]),
                _shared(z_local, batch["local_pos"]),
                batch["timestamps"],
                batch["valid"],
                tau=self.gitdl.tau,
                beta=self.gitdl.beta,
                sigma=self.gitdl.sigma,
            )
        return {"loss": loss, "shared_frames": batch["valid"].float().sum(1).mean()}

"""The alignability model: encoder f plus the learnable alignability score on its distances.

They travel together because the score is calibrated on the encoder's distances: retraining,
pseudo-labelling and verification all need both.
"""

import torch
from torch import nn

from pipeline.models.vtn import AlignabilityEncoder
from pipeline.models.score import AlignabilityScore


class AlignabilityModel(nn.Module):
    def __init__(self, encoder: AlignabilityEncoder, score: AlignabilityScore) -> None:
        super().__init__()
        self.encoder = encoder
        self.score = score

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.encoder(clips)  # (B, T, embedding)

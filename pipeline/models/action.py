"""Action encoder g: a clip-level R(2+1)D network with a classification head.

Two presets: torchvision's `r2plus1d_18` (paper scale) and `r2plus1d_tiny`, the same
(2+1)D residual design made narrow and shallow (one block per stage) so it trains on CPUs.
"""

import torch
from torch import nn
from torchvision.models.video import r2plus1d_18
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D

from pipeline.models.weights import load_backbone_weights


class TinyR2Plus1D(nn.Module):
    """Stem plus one (2+1)D basic block per width; every block after the first halves T, H, W."""

    def __init__(self, num_classes: int, widths: list[int], dropout: float) -> None:
        super().__init__()
        stem_mid = 3 * 3 * 3 * widths[0] // (3 * 3 + 3)  # the (2+1)D rule for parameter parity
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem_mid, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, widths[0], (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, in_width = [], widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or in_width != width:
                downsample = nn.Sequential(
                    nn.Conv3d(in_width, width, 1, stride=stride, bias=False), nn.BatchNorm3d(width)
                )
            blocks.append(BasicBlock(in_width, width, Conv2Plus1D, stride, downsample))
            in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_width, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(clips))  # (B, C, T', H', W')
        return self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, num_classes)


def r2plus1d_paper(num_classes: int, dropout: float, weights: str = "") -> nn.Module:
    """torchvision's R(2+1)D-18, optionally initialised from a local state-dict file."""
    model = r2plus1d_18(weights=None)
    if weights:
        load_backbone_weights(model, weights)
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    return model

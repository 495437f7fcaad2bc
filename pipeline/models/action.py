"""Action encoder g: a clip-level R(2+1)D network with a classification head.

Two presets: torchvision's `r2plus1d_18` (paper scale) and `r2plus1d_tiny`, a narrow,
shallow (2+1)D residual network that trains on CPUs. The tiny preset differs from the paper
network in two ways, both needed for it to learn at all on small, subtle actions (trained
from scratch on the default benchmark with every label it stayed at chance otherwise):
- it is top-heavy (as S3D, Xie et al. 2018): early blocks convolve each frame on its own and
  only the last `temporal_blocks` blocks convolve across time, once the frame is small;
- its head keeps time: features are pooled over space and into `time_bins` ordered steps,
  not over the whole clip, so which pose came first reaches the classifier.
Because it keeps every frame to the end, its trunk is also a frame-wise encoder, which lets
GITDL pretrain it without labels (`FramewiseTrunk`), as the paper starts g from
self-supervised weights.
"""

import torch
from torch import nn

from pipeline.models.weights import load_backbone_weights


def factorised_conv(
    in_width: int, out_width: int, spatial_stride: int, temporal_kernel: int
) -> nn.Sequential:
    """(2+1)D convolution: 3x3 over space, then `temporal_kernel` frames over time, with the
    middle width that gives a full 3x3x3 convolution's parameter count (Tran et al. 2018)."""
    middle = in_width * out_width * 27 // (in_width * 9 + out_width * 3)
    return nn.Sequential(
        nn.Conv3d(
            in_width,
            middle,
            (1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
            bias=False,
        ),
        nn.BatchNorm3d(middle),
        nn.ReLU(inplace=True),
        nn.Conv3d(
            middle,
            out_width,
            (temporal_kernel, 1, 1),
            padding=(temporal_kernel // 2, 0, 0),
            bias=False,
        ),
    )


class FactorisedBlock(nn.Module):
    """Residual block of two (2+1)D convolutions; halves H and W, keeps T."""

    def __init__(self, in_width: int, out_width: int, temporal_kernel: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            factorised_conv(in_width, out_width, 2, temporal_kernel),
            nn.BatchNorm3d(out_width),
            nn.ReLU(inplace=True),
            factorised_conv(out_width, out_width, 1, temporal_kernel),
            nn.BatchNorm3d(out_width),
        )
        self.shortcut = nn.Sequential(
            nn.Conv3d(in_width, out_width, 1, stride=(1, 2, 2), bias=False),
            nn.BatchNorm3d(out_width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.convs(x) + self.shortcut(x))


class TinyR2Plus1D(nn.Module):
    """Stem plus one block per width, then an order-keeping head."""

    def __init__(
        self,
        num_classes: int,
        widths: list[int],
        temporal_blocks: int,
        time_bins: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        first_temporal = len(widths) - temporal_blocks
        blocks, in_width = [], widths[0]
        for index, width in enumerate(widths):
            temporal_kernel = 3 if index >= first_temporal else 1
            blocks.append(FactorisedBlock(in_width, width, temporal_kernel))
            in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d((time_bins, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_width * time_bins, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(clips))  # (B, C, T, H', W')
        x = self.pool(x).flatten(1)  # (B, C * time_bins), time steps in order
        return self.fc(self.dropout(x))  # (B, num_classes)

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The trunk's features of every frame, pooled over space: (B, T, C)."""
        return self.blocks(self.stem(clips)).mean((3, 4)).transpose(1, 2)


class FramewiseTrunk(nn.Module):
    """The tiny action encoder's trunk as a frame encoder, with the projection head that GITDL
    trains beside it and then drops (SimCLR style): clips (B, C, T, H, W) -> (B, T, C')."""

    def __init__(self, action_encoder: nn.Module, *, projection: int) -> None:
        super().__init__()
        if not isinstance(action_encoder, TinyR2Plus1D):
            raise ValueError(
                f"GITDL pretraining of the action encoder needs r2plus1d_tiny, whose trunk keeps "
                f"every frame; {type(action_encoder).__name__} pools time away (start it from "
                "action_encoder.weights instead and set action_gitdl.epochs: 0)"
            )
        self.action_encoder = action_encoder
        width = action_encoder.fc.in_features // action_encoder.pool.output_size[0]
        self.projection_head = nn.Sequential(
            nn.Linear(width, projection), nn.ReLU(inplace=True), nn.Linear(projection, projection)
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.action_encoder.frame_features(clips)  # (B, T, C')

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, C') -> (B, T, projection)."""
        return self.projection_head(features)


def r2plus1d_paper(num_classes: int, dropout: float, weights: str = "") -> nn.Module:
    """torchvision's R(2+1)D-18, optionally initialised from a local state-dict file."""
    # imported here: torchvision.models costs about a second of every stage's start-up,
    # and only this preset needs it
    from torchvision.models.video import r2plus1d_18

    model = r2plus1d_18(weights=None)
    if weights:
        load_backbone_weights(model, weights)
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    return model

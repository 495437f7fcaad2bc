"""Alignability encoder f: a video transformer network (VTN) that embeds every frame.

A per-frame image backbone, then a temporal transformer (sinusoidal positions, pre-LayerNorm)
so each frame embedding sees its context, then a linear map to the frame embedding. The
backbone can see each frame minus the clip's mean frame (`subtract_clip_mean`): what stays
still in a clip (backdrop, lighting, colours) drops out and what moves remains. A separate
projection head serves GITDL pretraining only, as in SimCLR-style contrastive learning.
"""

import math

import torch
from torch import nn

from pipeline.models.weights import load_backbone_weights


class SmallCNN(nn.Module):
    """A plain conv-BN-ReLU stack for CPUs; each width halves the resolution."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers, in_width = [], 3
        for width in widths:
            layers += [
                nn.Conv2d(in_width, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            in_width = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = in_width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)  # (N, out_features)


def torchvision_backbone(name: str, weights: str = "") -> nn.Module:
    """A torchvision ResNet without its classifier, optionally loaded from a local file."""
    # imported here, not at the top: torchvision.models takes about a second to import
    # (it loads torch._dynamo), which every stage importing this module would pay
    from torchvision.models import resnet18, resnet50

    model = {"resnet18": resnet18, "resnet50": resnet50}[name](weights=None)
    if weights:
        load_backbone_weights(model, weights)
    model.out_features = model.fc.in_features
    model.fc = nn.Identity()
    return model


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed positional encoding of "Attention is all you need": (length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class AlignabilityEncoder(nn.Module):
    """Clips (B, C, T, H, W) -> frame embeddings (B, T, embedding)."""

    def __init__(
        self,
        backbone: nn.Module,
        hidden: int,
        layers: int,
        heads: int,
        embedding: int,
        projection: int,
        dropout: float,
        subtract_clip_mean: bool,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.subtract_clip_mean = subtract_clip_mean
        self.input_map = nn.Linear(backbone.out_features, hidden)
        layer = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=2 * hidden,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # The nested-tensor fast path does not apply to pre-norm layers; say so to avoid a warning.
        self.temporal = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.output_map = nn.Linear(hidden, embedding)
        self.projection_head = nn.Sequential(
            nn.Linear(embedding, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, projection)
        )

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        if self.subtract_clip_mean:
            # The static scene differs between clips far more than the actor's moves do, and
            # a frame-wise backbone sees it in every frame: without this, f's frames on the
            # moves benchmark carried the scene, not the move (docs/dataset_moves.md)
            clips = clips - clips.mean(dim=2, keepdim=True)  # (B, C, T, H, W)
        batch, channels, frames, height, width = clips.shape
        images = clips.transpose(1, 2).reshape(batch * frames, channels, height, width)
        return self.backbone(images).view(batch, frames, -1)  # (B, T, backbone features)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.input_map(self.frame_features(clips))  # (B, T, hidden)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2]).to(x)
        x = self.norm(self.temporal(x))
        return self.output_map(x)  # (B, T, embedding)

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        """GITDL's projection head h: (B, T, embedding) -> (B, T, projection)."""
        return self.projection_head(embeddings)

    def freeze_backbone(self) -> None:
        """Metric learning trains the temporal part only; the backbone keeps its BN statistics."""
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> "AlignabilityEncoder":
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()
        return self

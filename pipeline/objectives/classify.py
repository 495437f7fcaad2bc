"""The supervised objective of the action encoder g: cross-entropy on labeled (or
pseudo-labeled) clips."""

import torch
import torch.nn.functional as F
from torch import nn


class ClassifyObjective(nn.Module):
    """(clips (B, 3, T, H, W), labels (B,)) -> cross-entropy loss and batch accuracy."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        clips, labels = batch
        logits = self.model(clips)  # (B, classes)
        return {
            "loss": F.cross_entropy(logits.float(), labels),
            "accuracy": (logits.argmax(1) == labels).float().mean(),
        }

"""Class probabilities of whole videos from many views: softmax per view, averaged.

The test protocol uses 10 windows evenly spaced over each video x 3 crops along its long
side (30 views); pseudo-labelling uses one central view per video.
"""

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.config import ClipParams
from pipeline.data.datasets import ViewsDataset
from pipeline.data.frames import FrameStore
from pipeline.precision import channels_last, model_autocast


@torch.no_grad()
def view_probabilities(
    model: nn.Module, views: torch.Tensor, device: torch.device, precision: str
) -> torch.Tensor:
    """views (B, V, 3, T, H, W) -> probabilities (B, classes) averaged over the V views, the
    model at `precision` (run.precision), the softmax in float32."""
    batch, count = views.shape[:2]
    with model_autocast(device, precision):
        logits = model(views.flatten(0, 1).to(device, non_blocking=True))  # (B * V, classes)
    return logits.float().softmax(-1).view(batch, count, -1).mean(1).cpu()


@torch.no_grad()
def predict_videos(
    model: nn.Module,
    *,
    store: FrameStore,
    video_ids: list[str],
    clip: ClipParams,
    windows: int,
    crops: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    workers: int = 0,
    description: str = "predicting",
    mc_dropout: bool = False,
) -> np.ndarray:
    """Average-over-views class probabilities of each video: (videos, classes).

    mc_dropout keeps dropout active (BatchNorm still in eval mode), so repeated calls give
    the stochastic passes that uncertainty estimates need.
    """
    channels_last(model.eval().to(device))
    if mc_dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.train()
    dataset = ViewsDataset(store, video_ids, clip, windows, crops)
    videos_per_batch = max(batch_size // (windows * crops), 1)
    loader = DataLoader(dataset, batch_size=videos_per_batch, num_workers=workers)
    chunks = [
        view_probabilities(model, views, device, precision)
        for views in tqdm(loader, desc=description, leave=False)
    ]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), dtype=np.float32)

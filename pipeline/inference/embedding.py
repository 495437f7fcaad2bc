"""Frame embeddings of whole videos by the alignability encoder, one central view each."""

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.config import ClipParams
from pipeline.data.datasets import ViewsDataset
from pipeline.data.frames import FrameStore
from pipeline.precision import channels_last, model_autocast


@torch.no_grad()
def embed_videos(
    encoder: nn.Module,
    *,
    store: FrameStore,
    video_ids: list[str],
    clip: ClipParams,
    batch_size: int,
    device: torch.device,
    precision: str,
    workers: int = 0,
    description: str = "embedding",
) -> torch.Tensor:
    """One forward pass per video at `precision` (run.precision): (videos, T, embedding)
    float32 on the CPU."""
    channels_last(encoder.eval().to(device))
    dataset = ViewsDataset(store, video_ids, clip, windows=1, crops=1)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    chunks = []
    for views in tqdm(loader, desc=description, leave=False):
        with model_autocast(device, precision):
            embeddings = encoder(views[:, 0].to(device, non_blocking=True))  # (B, T, d)
        chunks.append(embeddings.float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, clip.frames, 0)

"""Spatial views of a clip: random resized crops with colour jitter for training, and the
evaluation protocol's crops along the long side. Every frame of a clip gets the same crop and
colour change, so augmentation never invents motion. Horizontal flips happen only when the
params allow them, because a mirrored action can be a different class."""

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import AugmentParams

# Per-channel statistics of natural video (Kinetics), the usual normalisation for video nets.
MEAN = torch.tensor([0.43216, 0.394666, 0.37645]).view(3, 1, 1, 1)
STD = torch.tensor([0.22803, 0.22145, 0.216989]).view(3, 1, 1, 1)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float (3, T, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)


def normalize(clip: torch.Tensor) -> torch.Tensor:
    """In place: (clip - MEAN) / STD."""
    return clip.sub_(MEAN).div_(STD)


def _resize(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # (3, T, h, w) -> (3, T, height, width); frames are treated as a batch of images
    resized = F.interpolate(
        clip.transpose(0, 1), size=(height, width), mode="bilinear", align_corners=False
    )
    return resized.transpose(0, 1)


def random_resized_crop(
    frames: np.ndarray, size: int, scale: tuple[float, float], rng: np.random.Generator
) -> torch.Tensor:
    """A box of `scale` of the frame area and aspect ratio in [3/4, 4/3], resized to size x size:
    uint8 (T, H, W, 3) -> float (3, T, size, size) in [0, 1]. Only the box is converted."""
    _, height, width, _ = frames.shape
    area = height * width * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    box_w = int(round(min(np.sqrt(area * aspect), width)))
    box_h = int(round(min(np.sqrt(area / aspect), height)))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    box = to_tensor(frames[:, top : top + box_h, left : left + box_w])  # (3, T, box_h, box_w)
    return _resize(box, size, size)


def color_jitter(clip: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s], in place.

    The three steps, x b, then (x - mean) c + mean, then (x - grey) s + grey with grey the
    mean over channels, are affine in x, so they run as one: x bcs + grey0 bc(1 - s) +
    mean0 b(1 - c), with grey0 and mean0 taken from the clip before any step."""
    if strength == 0:
        return clip
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    grey = clip.mean(dim=0, keepdim=True)  # (1, T, H, W)
    shift = grey * (brightness * contrast * (1 - saturation)) + float(
        grey.mean() * brightness * (1 - contrast)
    )
    return clip.mul_(brightness * contrast * saturation).add_(shift).clamp_(0.0, 1.0)


def train_view(
    frames: np.ndarray, crop: int, augment: AugmentParams, rng: np.random.Generator
) -> torch.Tensor:
    """One augmented, normalised training view: uint8 (T, H, W, 3) -> (3, T, crop, crop)."""
    clip = random_resized_crop(frames, crop, augment.scale, rng)
    clip = color_jitter(clip, augment.color_jitter, rng)
    if augment.hflip and rng.random() < 0.5:
        clip = clip.flip(-1)
    return normalize(clip)


def eval_views(frames: np.ndarray, crop: int, crops: int) -> torch.Tensor:
    """Resize the short side to `crop`, then take `crops` crops spread along the long side
    (left, centre, right for landscape frames): uint8 (T, H, W, 3) -> (crops, 3, T, crop, crop)."""
    clip = to_tensor(frames)
    _, _, height, width = clip.shape
    scale = crop / min(height, width)
    new_h, new_w = max(crop, round(height * scale)), max(crop, round(width * scale))
    clip = _resize(clip, new_h, new_w)
    offsets = np.linspace(0, max(new_h, new_w) - crop, crops).round().astype(int)
    if crops == 1:
        offsets = [(max(new_h, new_w) - crop) // 2]
    if new_w >= new_h:
        views = [clip[:, :, :crop, o : o + crop] for o in offsets]
    else:
        views = [clip[:, :, o : o + crop, :crop] for o in offsets]
    return normalize(torch.stack(views))

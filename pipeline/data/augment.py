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


def resize(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Bilinear resize: uint8 frames (T, h, w, 3) -> float (T, 3, height, width) in [0, 1]."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # channels-last
    return F.interpolate(
        pixels.float().div_(255.0), size=(height, width), mode="bilinear", align_corners=False
    )


def to_clips(frames: torch.Tensor) -> torch.Tensor:
    """Frames (N, T, 3, H, W) -> contiguous clips (N, 3, T, H, W)."""
    return frames.transpose(1, 2).contiguous()


def normalize(clip: torch.Tensor) -> torch.Tensor:
    """In place: (clip - MEAN) / STD."""
    return clip.sub_(MEAN).div_(STD)


def random_resized_crop(
    frames: np.ndarray, size: int, scale: tuple[float, float], rng: np.random.Generator
) -> torch.Tensor:
    """A box of `scale` of the frame area and aspect ratio in [3/4, 4/3], resized to size x size:
    uint8 (T, H, W, 3) -> float (T, 3, size, size) in [0, 1]."""
    _, height, width, _ = frames.shape
    area = height * width * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    box_w = int(round(min(np.sqrt(area * aspect), width)))
    box_h = int(round(min(np.sqrt(area / aspect), height)))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    return resize(frames[:, top : top + box_h, left : left + box_w], size, size)


def color_jitter(clips: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of each clip scaled by its three factors, in place:
    clips (B, 3, T, H, W) in [0, 1], factors (B, 3) in float64.

    The three steps, x b, then (x - mean) c + mean, then (x - grey) s + grey with grey the
    mean over channels, are affine in x, so they run as one: x bcs + grey0 bc(1 - s) +
    mean0 b(1 - c), with grey0 and mean0 taken from the clip before any step. The products of
    factors are taken in float64, as those of one clip's Python floats would be."""
    b, c, s = factors.view(-1, 3, 1, 1, 1, 1).unbind(1)  # each (B, 1, 1, 1, 1)
    grey = clips.mean(dim=1, keepdim=True)  # (B, 1, T, H, W)
    mean = grey.mean(dim=(2, 3, 4), keepdim=True)  # (B, 1, 1, 1, 1)
    shift = grey * (b * c * (1 - s)).float() + mean * b.float() * (1 - c).float()
    return clips.mul_((b * c * s).float()).add_(shift).clamp_(0.0, 1.0)


def draw_train_view(
    frames: np.ndarray, crop: int, augment: AugmentParams, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """The random part of a training view, drawn per clip: its crop (T, 3, crop, crop), mirrored
    when drawn so, and its colour jitter factors (3,), which `finish_train_views` applies to a
    whole batch in a few operations."""
    pixels = random_resized_crop(frames, crop, augment.scale, rng)
    jitter = np.ones(3)
    if augment.color_jitter > 0:
        jitter = rng.uniform(1 - augment.color_jitter, 1 + augment.color_jitter, size=3)
    if augment.hflip and rng.random() < 0.5:
        pixels = pixels.flip(-1)
    return {"pixels": pixels, "jitter": torch.from_numpy(jitter)}


def finish_train_views(pixels: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """A batch of drawn views, colour-jittered and normalised: pixels (B, T, 3, crop, crop) and
    jitter (B, 3) -> clips (B, 3, T, crop, crop)."""
    return normalize(color_jitter(to_clips(pixels), jitter))


def eval_views(frames: np.ndarray, crop: int, crops: int) -> torch.Tensor:
    """Resize the short side to `crop`, then take `crops` crops spread along the long side
    (left, centre, right for landscape frames): uint8 (T, H, W, 3) -> (crops, 3, T, crop, crop)."""
    _, height, width, _ = frames.shape
    scale = crop / min(height, width)
    new_h, new_w = max(crop, round(height * scale)), max(crop, round(width * scale))
    pixels = resize(frames, new_h, new_w)  # (T, 3, new_h, new_w)
    offsets = np.linspace(0, max(new_h, new_w) - crop, crops).round().astype(int)
    if crops == 1:
        offsets = [(max(new_h, new_w) - crop) // 2]
    if new_w >= new_h:
        views = [pixels[..., :crop, o : o + crop] for o in offsets]
    else:
        views = [pixels[..., o : o + crop, :crop] for o in offsets]
    return normalize(to_clips(torch.stack(views)))

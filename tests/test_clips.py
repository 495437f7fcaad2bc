"""Which frames make a clip, and the spatial views of a clip."""

import numpy as np
import pytest
import torch

from pipeline.config import AugmentParams, ClipParams
from pipeline.data.augment import (
    MEAN,
    STD,
    color_jitter,
    draw_train_view,
    eval_views,
    finish_train_views,
)
from pipeline.data.clips import evenly_spaced_windows, global_local_pair, random_window, window
from pipeline.data.datasets import ViewsDataset


def test_windows_clamp_short_videos_and_stay_inside_long_ones():
    assert list(window(5, 4, 2, 0)) == [0, 2, 4, 4]
    rng = np.random.default_rng(0)
    for _ in range(100):
        ids = random_window(32, 8, 4, rng)
        assert ids.min() >= 0 and ids.max() <= 31 and list(np.diff(ids)) == [4] * 7


def test_evenly_spaced_windows_cover_the_video_from_start_to_end():
    windows = evenly_spaced_windows(48, 8, 4, 10)
    assert windows.shape == (10, 8)
    assert windows[0, 0] == 0 and windows[-1, -1] == 47
    assert (np.diff(windows[:, 0]) >= 0).all()
    assert list(evenly_spaced_windows(48, 8, 4, 1)[0]) == list(range(9, 41, 4))  # the central one


@pytest.mark.parametrize("num_frames", [1, 5, 16, 32, 100, 400])
def test_global_local_pairs_share_frames_at_matching_positions(num_frames):
    rng = np.random.default_rng(num_frames)
    for _ in range(50):
        pair = global_local_pair(num_frames, 16, (0.3, 0.6), rng)
        assert len(pair.global_ids) == len(pair.local_ids) == 16
        assert len(pair.timestamps) >= 1
        assert (pair.global_ids[pair.global_pos] == pair.local_ids[pair.local_pos]).all()
        np.testing.assert_allclose(
            pair.timestamps, pair.global_ids[pair.global_pos] / max(num_frames - 1, 1)
        )
        assert (np.diff(pair.global_ids) >= 0).all() and (np.diff(pair.local_ids) >= 0).all()


def test_local_clip_is_denser_than_the_global_clip():
    rng = np.random.default_rng(1)
    pairs = [global_local_pair(200, 16, (0.3, 0.6), rng) for _ in range(20)]
    local_span = np.mean([p.local_ids[-1] - p.local_ids[0] for p in pairs])
    global_span = np.mean([p.global_ids[-1] - p.global_ids[0] for p in pairs])
    assert local_span < 0.7 * global_span
    assert np.mean([len(p.timestamps) for p in pairs]) >= 4


def _frames(t=8, h=40, w=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def train_view(
    frames: np.ndarray, crop: int, augment: AugmentParams, rng: np.random.Generator
) -> torch.Tensor:
    """One training view, drawn and finished as a batch of one: (3, T, crop, crop)."""
    drawn = draw_train_view(frames, crop, augment, rng)
    return finish_train_views(drawn["pixels"][None], drawn["jitter"][None])[0]


def test_train_view_crops_all_frames_alike_and_flips_only_when_allowed():
    frames = _frames()
    frames[:, :, : frames.shape[2] // 2] = 0  # left half black, right half bright
    frames[:, :, frames.shape[2] // 2 :] = 255
    plain = AugmentParams(scale=(1.0, 1.0), color_jitter=0.0, hflip=False)
    view = train_view(frames, 32, plain, np.random.default_rng(0))
    assert view.shape == (3, 8, 32, 32)
    pixels = view * STD + MEAN
    for seed in range(10):  # never mirrored: the dark side stays on the left
        pixels = train_view(frames, 32, plain, np.random.default_rng(seed)) * STD + MEAN
        assert pixels[..., :8].mean() < pixels[..., -8:].mean()
    flips = AugmentParams(scale=(1.0, 1.0), color_jitter=0.0, hflip=True)
    mirrored = [
        (lambda p: p[..., :8].mean() > p[..., -8:].mean())(
            train_view(frames, 32, flips, np.random.default_rng(s)) * STD + MEAN
        )
        for s in range(40)
    ]
    assert 5 < sum(mirrored) < 35
    # one crop and one colour change for the whole clip: frame differences stay where they were
    moving = _frames()
    moving[1:] = moving[0]
    same = train_view(moving, 32, AugmentParams(), np.random.default_rng(3))
    assert torch.allclose(same[:, 0], same[:, 5])


def test_eval_views_take_three_crops_along_the_long_side():
    frames = np.zeros((4, 40, 120, 3), dtype=np.uint8)
    frames[:, :, :40], frames[:, :, 40:80], frames[:, :, 80:] = 30, 130, 230
    views = eval_views(frames, 32, 3)
    assert views.shape == (3, 3, 4, 32, 32)
    levels = [(v * STD + MEAN).mean().item() * 255 for v in views]
    assert levels[0] < levels[1] < levels[2]
    assert eval_views(frames, 32, 1).shape == (1, 3, 4, 32, 32)
    portrait = np.zeros((4, 100, 40, 3), dtype=np.uint8)
    assert eval_views(portrait, 32, 3).shape == (3, 3, 4, 32, 32)


def test_colour_jitter_is_brightness_then_contrast_then_saturation_for_each_clip():
    clips = torch.rand(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2
    factors = torch.tensor([[0.7, 1.3, 0.9], [1.2, 0.8, 1.4]])
    jittered = color_jitter(clips.clone(), factors)
    for clip, factor, result in zip(clips, factors, jittered, strict=True):
        brightness, contrast, saturation = factor
        step = clip * brightness
        step = (step - step.mean()) * contrast + step.mean()
        grey = step.mean(dim=0, keepdim=True)
        step = ((step - grey) * saturation + grey).clamp(0.0, 1.0)
        assert torch.allclose(result, step, atol=1e-6)


def test_a_batch_of_drawn_views_finishes_as_each_view_alone():
    frames = _frames(t=16, h=64, w=114)
    augment = AugmentParams(hflip=True)
    drawn = [draw_train_view(frames, 48, augment, np.random.default_rng(s)) for s in range(5)]
    assert drawn[0]["pixels"].shape == (16, 3, 48, 48) and drawn[0]["jitter"].shape == (3,)
    batch = finish_train_views(
        torch.stack([d["pixels"] for d in drawn]), torch.stack([d["jitter"] for d in drawn])
    )
    assert batch.shape == (5, 3, 16, 48, 48) and batch.is_contiguous()
    for view, one in zip(drawn, batch, strict=True):
        alone = finish_train_views(view["pixels"][None], view["jitter"][None])[0]
        assert torch.allclose(one, alone, atol=1e-6)
    # channels stay channels through the crop's channels-last layout: a red-orange frame stays so
    coloured = np.broadcast_to(np.array([200, 100, 0], dtype=np.uint8), (16, 64, 114, 3))
    plain = AugmentParams(color_jitter=0.0)
    view = train_view(np.ascontiguousarray(coloured), 48, plain, np.random.default_rng(0))
    levels = (view * STD + MEAN).mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(levels, torch.tensor([200.0, 100.0, 0.0]), atol=0.01)


def test_evaluation_views_of_a_video_are_those_of_each_window():
    frames = np.random.default_rng(0).integers(0, 256, (20, 40, 72, 3), dtype=np.uint8)

    class OneVideoStore:  # ViewsDataset reads nothing from a store but frames()
        def frames(self, video_id: str) -> np.ndarray:
            return frames

    clip = ClipParams(frames=6, stride=3, crop=32)
    views = ViewsDataset(OneVideoStore(), ["v"], clip, windows=5, crops=3)[0]
    windows = evenly_spaced_windows(len(frames), clip.frames, clip.stride, 5)
    expected = torch.cat([eval_views(frames[ids], clip.crop, 3) for ids in windows])
    assert views.shape == (15, 3, 6, 32, 32)
    assert torch.equal(views, expected)

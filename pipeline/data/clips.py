"""Which frames of a stored video make a clip: random windows for training, evenly spaced
windows for evaluation, and GITDL's global/local pair with the frame ids both share.

All functions return frame indices into a video of `num_frames` stored frames; indices past
the end are clamped, so a video shorter than a clip repeats its last frame.
"""

from dataclasses import dataclass

import numpy as np


def window(num_frames: int, frames: int, stride: int, start: int) -> np.ndarray:
    """`frames` indices from `start` every `stride` frames, clamped to the video."""
    return np.minimum(start + stride * np.arange(frames), num_frames - 1)


def random_window(
    num_frames: int, frames: int, stride: int, rng: np.random.Generator
) -> np.ndarray:
    """A training clip: the window starts anywhere it still fits (at 0 when nothing fits)."""
    last_start = max(num_frames - (frames - 1) * stride - 1, 0)
    return window(num_frames, frames, stride, int(rng.integers(0, last_start + 1)))


def evenly_spaced_windows(num_frames: int, frames: int, stride: int, count: int) -> np.ndarray:
    """The evaluation protocol's `count` windows, start points spread evenly (a single window
    sits in the middle): (count, frames)."""
    last_start = max(num_frames - (frames - 1) * stride - 1, 0)
    if count == 1:
        starts = np.array([last_start // 2])
    else:
        starts = np.linspace(0, last_start, count).round().astype(int)
    return np.stack([window(num_frames, frames, stride, s) for s in starts])


@dataclass(frozen=True)
class GlobalLocalPair:
    """GITDL's two views of one video and the frames they share.

    global_ids, local_ids: (T,) frame ids of each clip.
    global_pos, local_pos: (n,) where each shared frame sits in each clip.
    timestamps: (n,) shared frame ids normalised to [0, 1] by the video length.
    """

    global_ids: np.ndarray
    local_ids: np.ndarray
    global_pos: np.ndarray
    local_pos: np.ndarray
    timestamps: np.ndarray


def global_local_pair(
    num_frames: int, frames: int, local_span: tuple[float, float], rng: np.random.Generator
) -> GlobalLocalPair:
    """Global clip: one random frame from each of `frames` equal segments of the whole video.
    Local clip: `frames` frames packed densely into a random sub-span covering a fraction
    `local_span` of the video, always including the global frames that fall inside it, so
    the two clips share about that fraction of their frames however long the video is."""
    edges = np.linspace(0, num_frames, frames + 1).astype(int)
    global_ids = np.array(
        [rng.integers(a, max(b, a + 1)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    global_ids = np.minimum(global_ids, num_frames - 1)
    span = max(int(round(rng.uniform(*local_span) * num_frames)), 1)
    start = int(rng.integers(0, num_frames - span + 1))
    inside = np.unique(global_ids[(global_ids >= start) & (global_ids < start + span)])
    if inside.size == 0:  # a span shorter than a segment: anchor it on the nearest global frame
        inside = global_ids[[np.argmin(np.abs(global_ids - start))]]
        start = min(start, int(inside[0]))
        span = max(span, int(inside[0]) - start + 1)
    if span <= frames:  # every frame of the span fits, some twice
        local_ids = np.linspace(start, start + span - 1, frames).round().astype(int)
    else:
        others = np.setdiff1d(np.arange(start, start + span), inside)
        fill = others[np.linspace(0, others.size - 1, frames - inside.size).round().astype(int)]
        local_ids = np.sort(np.concatenate([inside, fill]))
    # both clips are sorted: a shared frame's first position in each is a binary search away
    global_pos = np.searchsorted(global_ids, inside)
    local_pos = np.searchsorted(local_ids, inside)
    timestamps = (inside / max(num_frames - 1, 1)).astype(np.float32)
    return GlobalLocalPair(global_ids, local_ids, global_pos, local_pos, timestamps)

"""The random factors of one clip: length, segment durations, key-pose wobble, jump height,
camera, scene and colours.

Factors are drawn without knowing the class, from the same distribution for every class, so
nothing but the phases tells classes apart. They are plain data (JSON-ready), kept in the
dataset's sidecar file for inspection.
"""

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.config import SynthesizeParams
from pipeline.data.synthetic.design import POSES
from pipeline.data.synthetic.motion import SEGMENT_SHARES

PATTERNS = ("gradient", "stripes", "tiles", "waves")
JUMP_RANGE = (0.15, 0.25)  # flight apex, actor heights: keeps the somersault inside crops


@dataclass(frozen=True)
class SceneFactors:
    """A backdrop: wall above the ground line, floor below, a pattern on the wall."""

    pattern: str
    wall_rgb: tuple[float, float, float]
    floor_rgb: tuple[float, float, float]
    amplitude: float  # pattern strength, in [0, 1] intensity units
    angle: float  # radians
    period: float  # pattern wavelength as a fraction of the frame side
    phase: float  # radians


@dataclass(frozen=True)
class ClipFactors:
    """Everything random about one clip besides its class."""

    n_frames: int
    durations: dict[str, int]  # segment -> frames, keys of the benchmark's segment shares
    poses: dict[str, list[float]]  # key pose -> angles, POSES after a per-clip wobble
    jump: float  # flight apex, actor heights
    zoom: float  # actor size relative to settings.actor_height
    shift: tuple[float, float]  # camera offset (x, y), fractions of the frame height
    scene: SceneFactors
    actor_rgb: tuple[float, float, float]
    noise_seed: int

    def to_json(self) -> dict:
        return asdict(self)


def split_frames(n_frames: int, weights: dict[str, float]) -> dict[str, int]:
    """Share `n_frames` among segments in proportion to `weights`, at least one frame each:
    each gets the whole frames of its exact share, then the largest remainders get the rest."""
    if n_frames < len(weights):
        raise ValueError(f"{n_frames} frames cannot hold {len(weights)} segments")
    raw = np.array(list(weights.values()))
    exact = raw / raw.sum() * n_frames
    counts = np.maximum(np.floor(exact).astype(int), 1)
    while counts.sum() > n_frames:  # segments raised to one frame took it from the others
        counts[np.argmax(np.where(counts > 1, counts - exact, -np.inf))] -= 1
    while counts.sum() < n_frames:
        counts[np.argmax(exact - counts)] += 1
    return {k: int(c) for k, c in zip(weights, counts, strict=True)}


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _colour(rng: np.random.Generator, luminance: float) -> tuple[float, float, float]:
    """A random hue and saturation at a given luminance."""
    base = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.8), 1.0))
    top = _luminance(base)
    if luminance <= top:
        rgb = base * luminance / top
    else:  # brighter than the pure hue can be: mix in white
        rgb = base + (luminance - top) / (1.0 - top) * (1.0 - base)
    return tuple(float(c) for c in np.clip(rgb, 0.0, 1.0))


def _scene(
    rng: np.random.Generator, settings: SynthesizeParams
) -> tuple[SceneFactors, tuple[float, float, float]]:
    """The backdrop and an actor colour that stands out from its wall."""
    wall_lum = rng.uniform(0.15, 0.85)
    # The actor sits at least `contrast` away from the wall's mean luminance, on whichever
    # side leaves room.
    darker = wall_lum - settings.contrast >= 0.05
    lighter = wall_lum + settings.contrast <= 0.95
    if darker and (not lighter or rng.uniform() < 0.5):
        actor_lum = rng.uniform(0.0, wall_lum - settings.contrast)
    else:
        actor_lum = rng.uniform(min(wall_lum + settings.contrast, 1.0), 1.0)
    scene = SceneFactors(
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        wall_rgb=_colour(rng, wall_lum),
        floor_rgb=_colour(rng, rng.uniform(0.1, 0.9)),
        amplitude=float(settings.texture * rng.uniform(0.5, 1.0)),
        angle=float(rng.uniform(0.0, np.pi)),
        period=float(rng.uniform(0.08, 0.4)),
        phase=float(rng.uniform(0.0, 2.0 * np.pi)),
    )
    return scene, _colour(rng, actor_lum)


def sample_factors(
    rng: np.random.Generator,
    settings: SynthesizeParams,
    segment_shares: dict[str, float] = SEGMENT_SHARES,
) -> ClipFactors:
    """Draw one clip's factors; the class plays no part. `segment_shares` names the segments
    of the benchmark's clips and their mean shares of the frames."""
    n_frames = int(rng.integers(settings.min_frames, settings.max_frames + 1))
    spread = rng.uniform(-settings.phase_jitter, settings.phase_jitter, len(segment_shares))
    weights = {k: v * np.exp(d) for (k, v), d in zip(segment_shares.items(), spread, strict=True)}
    poses = {
        name: [
            float(a)
            for a in np.asarray(angles) + rng.uniform(-1, 1, len(angles)) * settings.pose_jitter
        ]
        for name, angles in POSES.items()
    }
    scene, actor_rgb = _scene(rng, settings)
    return ClipFactors(
        n_frames=n_frames,
        durations=split_frames(n_frames, weights),
        poses=poses,
        jump=float(rng.uniform(*JUMP_RANGE)),
        zoom=float(np.exp(rng.uniform(-settings.zoom_jitter, settings.zoom_jitter))),
        shift=(
            float(rng.uniform(-1, 1) * settings.shift),
            float(rng.uniform(-1, 1) * settings.shift),
        ),
        scene=scene,
        actor_rgb=actor_rgb,
        noise_seed=int(rng.integers(2**31)),
    )

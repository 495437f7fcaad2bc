"""Draw the actor: a stick figure of thick, anti-aliased limbs, posed frame by frame, over
the clip's backdrop, seen by a static camera, with sensor noise."""

import numba
import numpy as np

from pipeline.config import SynthesizeParams
from pipeline.data.synthetic.design import CLASSES, POSE_KEYS
from pipeline.data.synthetic.factors import ClipFactors
from pipeline.data.synthetic.motion import Motion, build_motion
from pipeline.data.synthetic.scene import backdrop

# Body proportions in actor heights: feet to crown of a standing actor is 1.
SHIN, THIGH, TORSO, NECK, HEAD = 0.25, 0.25, 0.29, 0.02, 0.1
UPPER_ARM, FOREARM = 0.16, 0.15
GROUND = 0.88  # row of the ground line, fraction of the frame height, before the camera shift
FAR_SHADE = 0.3  # far limbs sit this much further from the wall colour than near ones

_ANGLE = {key: i for i, key in enumerate(POSE_KEYS)}


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 2) in image coordinates (y down); 0 is up, positive clockwise."""
    return np.stack([np.sin(angle), -np.cos(angle)], axis=-1)


def skeleton(pose: np.ndarray) -> dict[str, np.ndarray]:
    """Joint positions (T, 2) in actor heights, hip at the origin, for poses (T, 9)."""
    a = {key: pose[:, i] for key, i in _ANGLE.items()}
    lean = a["lean"]
    hip = np.zeros((len(pose), 2))
    neck = hip + TORSO * _direction(lean)
    joints = {"hip": hip, "neck": neck, "head": neck + (NECK + HEAD) * _direction(lean)}
    for side in ("near", "far"):
        shoulder = lean + a[f"shoulder_{side}"]
        joints[f"elbow_{side}"] = neck + UPPER_ARM * _direction(shoulder)
        joints[f"hand_{side}"] = joints[f"elbow_{side}"] + FOREARM * _direction(
            shoulder - a[f"elbow_{side}"]
        )
        thigh = lean + np.pi - a[f"hip_{side}"]
        joints[f"knee_{side}"] = hip + THIGH * _direction(thigh)
        joints[f"foot_{side}"] = joints[f"knee_{side}"] + SHIN * _direction(
            thigh + a[f"knee_{side}"]
        )
    return joints


def _ground_offset(joints: dict[str, np.ndarray], limb: float) -> np.ndarray:
    """(T, 2) offset that puts the lower foot on the ground line, feet centred at x = 0."""
    feet = np.stack([joints["foot_near"], joints["foot_far"]])  # (2, T, 2)
    return np.stack([feet[:, :, 0].mean(0), feet[:, :, 1].max(0) + limb / 2], axis=-1)


def place(motion: Motion, stand: np.ndarray, limb: float) -> dict[str, np.ndarray]:
    """Joints (T, 2) in actor heights relative to the ground point below the actor.

    On the ground the lower foot touches the ground line and the feet stay centred. In the
    air the body turns by theta about its torso middle, which rises by lift above where it
    is in the `stand` pose (9,), the pose the flight starts and ends in, so take-off and
    landing join the flight without a jump. `limb` is the limb width in actor heights.
    """
    joints = skeleton(motion.pose)
    upright = skeleton(stand[None])
    stand_middle = 0.5 * (upright["hip"] + upright["neck"])  # (1, 2)
    stand_middle = stand_middle - _ground_offset(upright, limb)
    on_ground = _ground_offset(joints, limb)  # (T, 2)
    middle = 0.5 * (joints["hip"] + joints["neck"])  # (T, 2)
    cos, sin = np.cos(motion.theta)[:, None], np.sin(motion.theta)[:, None]  # (T, 1)
    in_air = stand_middle - np.stack([np.zeros_like(motion.lift), motion.lift], axis=-1)  # (T, 2)
    placed = {}
    for name, point in joints.items():
        rel = point - middle  # (T, 2)
        turned = np.concatenate(
            [rel[:, :1] * cos - rel[:, 1:] * sin, rel[:, :1] * sin + rel[:, 1:] * cos], axis=1
        )
        placed[name] = np.where(motion.airborne[:, None], in_air + turned, point - on_ground)
    return placed


# Parts drawn back to front: (from joint, to joint, width in limb widths, far side). The
# head is a capsule of zero length; its width 0 stands for the fixed radius HEAD.
_PARTS = (
    ("hip", "knee_far", 1.0, True),
    ("knee_far", "foot_far", 1.0, True),
    ("neck", "elbow_far", 0.85, True),
    ("elbow_far", "hand_far", 0.85, True),
    ("hip", "neck", 1.5, False),
    ("head", "head", 0.0, False),
    ("hip", "knee_near", 1.0, False),
    ("knee_near", "foot_near", 1.0, False),
    ("neck", "elbow_near", 0.85, False),
    ("elbow_near", "hand_near", 0.85, False),
)


@numba.njit(cache=True)
def _draw_capsules(
    image: np.ndarray, starts: np.ndarray, ends: np.ndarray, radii: np.ndarray, colours: np.ndarray
) -> None:
    """Paint anti-aliased capsules over `image` (T, H, W, 3) in place, in order: capsule k
    of frame t runs from starts[t, k] to ends[t, k] (pixel x, y) with radius radii[k] and
    colour colours[k]. Only the pixels of each capsule's bounding box are visited."""
    frames, height, width, _ = image.shape
    for t in range(frames):
        for k in range(radii.shape[0]):
            ax, ay = starts[t, k, 0], starts[t, k, 1]
            dx, dy = ends[t, k, 0] - ax, ends[t, k, 1] - ay
            length2 = max(dx * dx + dy * dy, 1e-12)
            reach = radii[k] + 1.0
            x0 = max(int(np.floor(min(ax, ax + dx) - reach)), 0)
            x1 = min(int(np.ceil(max(ax, ax + dx) + reach)), width)
            y0 = max(int(np.floor(min(ay, ay + dy) - reach)), 0)
            y1 = min(int(np.ceil(max(ay, ay + dy) + reach)), height)
            for y in range(y0, y1):
                for x in range(x0, x1):
                    px, py = x + 0.5 - ax, y + 0.5 - ay
                    along = min(max((px * dx + py * dy) / length2, 0.0), 1.0)
                    ex, ey = px - along * dx, py - along * dy
                    alpha = min(max(radii[k] - np.sqrt(ex * ex + ey * ey) + 0.5, 0.0), 1.0)
                    if alpha > 0.0:
                        for c in range(3):
                            image[t, y, x, c] += alpha * (colours[k, c] - image[t, y, x, c])


def frame_width(settings: SynthesizeParams) -> int:
    """Frame width in pixels: `size` x `aspect`, rounded to an even number (H.264 needs it)."""
    return 2 * round(settings.size * settings.aspect / 2)


def key_poses(factors: ClipFactors) -> dict[str, np.ndarray]:
    """The clip's key poses as arrays: name -> (9,) angles."""
    return {name: np.asarray(angles) for name, angles in factors.poses.items()}


def render_clip(
    label: int, factors: ClipFactors, settings: SynthesizeParams, noise: bool = True
) -> np.ndarray:
    """Frames (T, size, frame_width(settings), 3) uint8 of class `label` under `factors`;
    `noise=False` leaves out the sensor noise."""
    motion = build_motion(CLASSES[label], factors.durations, key_poses(factors), factors.jump)
    return render_motion(motion, factors, settings, noise)


def render_motion(
    motion: Motion, factors: ClipFactors, settings: SynthesizeParams, noise: bool = True
) -> np.ndarray:
    """Frames (T, size, frame_width(settings), 3) uint8 of the actor moving as `motion` says,
    in the scene, camera and colours of `factors`; any benchmark's motion draws through here.
    The actor stands mid-frame: a wider frame adds backdrop on both sides, as a broadcast
    camera framing one athlete does."""
    height, width = settings.size, frame_width(settings)
    poses = key_poses(factors)
    limb = settings.limb_width
    joints = place(motion, poses["stand"], limb)
    unit = settings.actor_height * factors.zoom * height  # pixels per actor height
    ground = GROUND + factors.shift[1]
    origin = np.array([width / 2 + factors.shift[0] * height, ground * height])

    wall, actor = np.asarray(factors.scene.wall_rgb), np.asarray(factors.actor_rgb)
    far = np.clip(actor + FAR_SHADE * (actor - wall), 0.0, 1.0)
    starts = np.stack([origin + unit * joints[a] for a, _, _, _ in _PARTS], axis=1)  # (T, K, 2)
    ends = np.stack([origin + unit * joints[b] for _, b, _, _ in _PARTS], axis=1)  # (T, K, 2)
    radii = np.array([(0.5 * limb * w if w else HEAD) * unit for _, _, w, _ in _PARTS])  # (K,)
    colours = 255.0 * np.stack([far if is_far else actor for _, _, _, is_far in _PARTS])  # (K, 3)
    background = backdrop(factors.scene, height, width, ground)  # (H, W, 3)
    background = (255.0 * background).astype(np.float32)
    image = np.repeat(background[None], len(motion.pose), axis=0)  # (T, H, W, 3)
    _draw_capsules(image, starts, ends, radii, colours)
    if noise and settings.noise > 0:
        rng = np.random.default_rng(factors.noise_seed)
        image += settings.noise * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)

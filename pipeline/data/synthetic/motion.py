"""A class and a clip's factors -> the actor's pose, rotation and height in every frame.

A clip is a list of segments: holds of a key pose, smooth moves between two key poses, and
the flight. A move between two poses takes the same frames in either direction and passes
through the same in-between poses, and the flight is symmetric in time apart from the sign
of its rotation, so classes that differ only in order are exact permutations of each
other's frames.
"""

from dataclasses import dataclass

import numpy as np

from pipeline.data.synthetic.design import ROTATIONS, TAKEOFFS, ActionClass

# Mean share of the clip each segment takes; a clip's factors scale them at random. A move
# is named by the two poses it joins, whichever way the class goes between them. The action
# encoder's 8-frame clip spans the video about 5 source frames apart: the take-off holds
# are long enough for most clips to sample each once, and the flight for consecutive samples
# of the somersault to lie well under the 180 degrees at which its direction is lost.
SEGMENT_SHARES = {
    "stand-crouch": 0.05,
    "crouch": 0.10,
    "crouch-reach": 0.06,
    "reach": 0.10,
    "reach-stand": 0.05,
    "flight": 0.44,
    "stand-landing": 0.06,
    "landing": 0.14,
}
# Share of the flight spent folding into (and, at the end, opening out of) the body position;
# short, so that most samples of the flight show the position whole: half-folded tucks and
# pikes look alike.
FOLD_SHARE = 0.2


@dataclass(frozen=True)
class Motion:
    """Per-frame state of the actor. pose: (T, 9) angles (design.POSE_KEYS); theta: (T,)
    rotation in radians, clockwise on screen; lift: (T,) height above the standing position
    in actor heights; airborne: (T,) whether the feet are off the ground."""

    pose: np.ndarray
    theta: np.ndarray
    lift: np.ndarray
    airborne: np.ndarray


def smoothstep(u: np.ndarray) -> np.ndarray:
    """3u^2 - 2u^3: eases from 0 at u = 0 to 1 at u = 1 with zero slope at both ends."""
    # Symmetric: s(1 - u) = 1 - s(u), so a move played backwards passes the same poses.
    return u * u * (3.0 - 2.0 * u)


def _move(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    u = np.arange(1, frames + 1) / (frames + 1)  # excludes both ends: those are the holds
    return start + smoothstep(u)[:, None] * (end - start)  # (frames, 9)


def _edge(a: str, b: str) -> str:
    """Segment name of the move between two take-off poses, the same in both directions."""
    for name in ("stand-crouch", "crouch-reach", "reach-stand"):
        if set(name.split("-")) == {a, b}:
            return name
    raise KeyError(f"no take-off move between {a!r} and {b!r}")


def build_motion(
    action: ActionClass, durations: dict[str, int], poses: dict[str, np.ndarray], jump: float
) -> Motion:
    """The per-frame motion of `action` with segment lengths `durations` (frames, keys of
    SEGMENT_SHARES), key poses `poses` (name -> (9,) angles) and flight apex `jump` (actor
    heights)."""
    stand = poses["stand"]
    first, second = TAKEOFFS[action.takeoff]
    takeoff = [
        _move(stand, poses[first], durations[_edge("stand", first)]),
        np.repeat(poses[first][None], durations[first], axis=0),
        _move(poses[first], poses[second], durations[_edge(first, second)]),
        np.repeat(poses[second][None], durations[second], axis=0),
        _move(poses[second], stand, durations[_edge(second, "stand")]),
    ]
    landing_pose = poses[action.landing]
    landing = [
        _move(stand, landing_pose, durations["stand-landing"]),
        np.repeat(landing_pose[None], durations["landing"], axis=0),
    ]

    n_flight = durations["flight"]
    s = (np.arange(n_flight) + 0.5) / n_flight  # (F,) symmetric about 0.5
    fold = smoothstep(np.clip(np.minimum(s, 1.0 - s) / FOLD_SHARE, 0.0, 1.0))
    flight = stand + fold[:, None] * (poses[action.position] - stand)  # (F, 9)

    ground = np.concatenate(takeoff)
    after = np.concatenate(landing)
    pose = np.concatenate([ground, flight, after])  # (T, 9)
    theta = np.zeros(len(pose))
    lift = np.zeros(len(pose))
    airborne = np.zeros(len(pose), dtype=bool)
    air = slice(len(ground), len(ground) + n_flight)
    theta[air] = ROTATIONS[action.rotation] * 2.0 * np.pi * s
    lift[air] = 4.0 * s * (1.0 - s) * jump
    airborne[air] = True
    return Motion(pose, theta, lift, airborne)

"""A move sequence and a clip's factors -> the actor's pose, rotation and height in every
frame (the same Motion the poses benchmark draws).

Segments are named by slot, not by move (rest_0, move_1, rest_1, ...), so a clip's timing is
drawn without knowing its class and the three moves of a class share the frames in the same
way whatever their order. Every move is symmetric in time about its middle apart from the
sign of a somersault's turn, so classes of one group are permutations of each other's frames.
"""

import numpy as np

from pipeline.data.synthetic.moves_design import AIRBORNE_TURNS, MOVES, MOVES_PER_CLASS
from pipeline.data.synthetic.moves_design import MoveSequence
from pipeline.data.synthetic.motion import Motion, smoothstep

# Mean share of the clip each slot takes; a clip's factors scale them at random. Rests are
# short: at the action encoder's 8 samples over the clip, each move gets about two.
MOVE_SEGMENT_SHARES = {
    "rest_0": 0.07,
    "move_1": 0.26,
    "rest_1": 0.07,
    "move_2": 0.26,
    "rest_2": 0.07,
    "move_3": 0.26,
    "rest_3": 0.07,
}
# Share of a move spent going into (and, at the end, coming out of) its key pose.
GO_SHARE = 0.35


def _move(name: str, frames: int, poses: dict[str, np.ndarray], jump: float) -> Motion:
    """One move of `frames` frames that starts and ends at the standing pose."""
    s = (np.arange(frames) + 0.5) / frames  # (F,) symmetric about 0.5
    reach = smoothstep(np.clip(np.minimum(s, 1.0 - s) / GO_SHARE, 0.0, 1.0))  # (F,)
    stand = poses["stand"]
    pose = stand + reach[:, None] * (poses[MOVES[name]] - stand)  # (F, 9)
    airborne = np.full(frames, name in AIRBORNE_TURNS)
    theta = 2.0 * np.pi * AIRBORNE_TURNS.get(name, 0.0) * s
    lift = np.where(airborne, 4.0 * s * (1.0 - s) * jump, 0.0)
    return Motion(pose, np.where(airborne, theta, 0.0), lift, airborne)


def _rest(frames: int, stand: np.ndarray) -> Motion:
    return Motion(
        np.repeat(stand[None], frames, axis=0),
        np.zeros(frames),
        np.zeros(frames),
        np.zeros(frames, dtype=bool),
    )


def build_move_motion(
    action: MoveSequence, durations: dict[str, int], poses: dict[str, np.ndarray], jump: float
) -> Motion:
    """The per-frame motion of `action` with slot lengths `durations` (frames, keys of
    MOVE_SEGMENT_SHARES), key poses `poses` (name -> (9,) angles) and jump apex `jump`
    (actor heights)."""
    if len(action.moves) != MOVES_PER_CLASS:
        raise ValueError(f"a class makes {MOVES_PER_CLASS} moves, got {action.moves}")
    parts = [_rest(durations["rest_0"], poses["stand"])]
    for slot, name in enumerate(action.moves, start=1):
        parts.append(_move(name, durations[f"move_{slot}"], poses, jump))
        parts.append(_rest(durations[f"rest_{slot}"], poses["stand"]))
    return Motion(
        pose=np.concatenate([p.pose for p in parts]),
        theta=np.concatenate([p.theta for p in parts]),
        lift=np.concatenate([p.lift for p in parts]),
        airborne=np.concatenate([p.airborne for p in parts]),
    )

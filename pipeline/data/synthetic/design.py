"""The classes of the synthetic benchmark: take-off x rotation x body position x landing.

Like a Diving48 dive, every clip is take-off, flight, landing, and a class is one choice per
phase. Two of the four choices differ only in the order of the same poses (crouch-then-reach
against reach-then-crouch; a forward against a backward somersault, which visits the same
orientations in reverse), so the 24 classes fall into 6 groups of 4 whose frames have the
same distribution: a classifier on temporally pooled frames can tell the group, never the
class within it. The other two choices change the poses of one phase.
"""

from dataclasses import dataclass
from itertools import product

# A pose is 9 angles in radians, for an actor seen from its left side and facing right.
# lean: torso from vertical, positive forward. shoulder: arm from straight up (0) through
# forward (pi/2) to hanging (pi). elbow: forearm bend. hip: thigh forward from straight
# down. knee: shin bend backwards. "near" limbs face the camera, "far" ones are behind.
POSE_KEYS = (
    "lean",
    "shoulder_near",
    "elbow_near",
    "shoulder_far",
    "elbow_far",
    "hip_near",
    "knee_near",
    "hip_far",
    "knee_far",
)

POSES: dict[str, tuple[float, ...]] = {
    # ground poses of the take-off
    "stand": (0.0, 2.9, 0.3, 3.0, 0.3, 0.0, 0.0, 0.0, 0.0),
    "crouch": (0.7, 3.9, 0.1, 4.0, 0.1, 2.0, 2.3, 2.0, 2.3),
    "reach": (-0.05, 0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0),
    # body positions held in the air
    "tuck": (0.0, 2.5, 1.0, 2.6, 1.0, 2.6, 2.7, 2.6, 2.7),  # a ball: arms hug the shins
    "pike": (0.3, 1.5, 0.0, 1.6, 0.0, 2.1, 0.0, 2.1, 0.0),  # a V: arms reach for the feet
    # final poses of the landing
    "stick": (0.0, 1.4, 0.0, 1.6, 0.0, 0.0, 0.0, 0.0, 0.0),
    "squat": (0.5, 1.5, 0.0, 1.6, 0.0, 2.1, 2.4, 2.1, 2.4),
    "lunge": (0.15, 0.6, 0.0, 3.9, 0.0, 1.3, 1.5, -0.5, 0.2),
}

TAKEOFFS = {"crouch-reach": ("crouch", "reach"), "reach-crouch": ("reach", "crouch")}
# +1: clockwise on screen, towards the face of the right-facing actor.
ROTATIONS = {"forward": 1, "backward": -1}
POSITIONS = ("tuck", "pike")
LANDINGS = ("stick", "squat", "lunge")


@dataclass(frozen=True)
class ActionClass:
    """One class: a choice of take-off, somersault direction, body position and landing."""

    takeoff: str
    rotation: str
    position: str
    landing: str

    @property
    def phases(self) -> list[str]:
        """Phase names, in the order of a Diving48 vocabulary entry."""
        return [self.takeoff, self.rotation, self.position, self.landing]


# Take-off varies fastest, then rotation: classes 4k..4k+3 are one pooled-identical group, so
# the first few classes of a small test dataset already hold order-only pairs.
CLASSES: tuple[ActionClass, ...] = tuple(
    ActionClass(takeoff, rotation, position, landing)
    for landing, position, rotation, takeoff in product(LANDINGS, POSITIONS, ROTATIONS, TAKEOFFS)
)
CLASS_COUNT = len(CLASSES)


def differs_only_in_order(a: ActionClass, b: ActionClass) -> bool:
    """True when two distinct classes hold the same poses and differ only in their order."""
    return a != b and (a.position, a.landing) == (b.position, b.landing)


def differing_phases(a: ActionClass, b: ActionClass) -> list[str]:
    """Names of the phase choices in which two classes differ."""
    fields = ("takeoff", "rotation", "position", "landing")
    return [f for f in fields if getattr(a, f) != getattr(b, f)]

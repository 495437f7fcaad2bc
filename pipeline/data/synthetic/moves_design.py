"""The classes of the moves benchmark: an ordered sequence of three different moves.

The actor stands still between moves, and every move starts and ends in the same standing
pose, so a clip is rest, move, rest, move, rest, move, rest. Of the four moves (a straight
jump, a somersault, a crouch, a reach with both arms) a class picks three in an order: 24
classes in 4 groups of 6, where a group is one set of three moves and its 6 classes are the
orders of that set. Classes of a group hold the same frames in another order (a bag of frames
can find the group, never the class within it), and classes of different groups share
their rest frames and two of their three moves, so most single frames look alike everywhere.
"""

from dataclasses import dataclass
from itertools import combinations, permutations

# Each move and the key pose it passes through (factors.POSES, wobbled per clip); the two
# airborne moves keep the standing pose and differ by their rotation.
MOVES = {"jump": "stand", "flip": "stand", "crouch": "crouch", "reach": "reach"}
AIRBORNE_TURNS = {"jump": 0.0, "flip": 1.0}  # whole turns in the air, clockwise on screen
MOVES_PER_CLASS = 3


@dataclass(frozen=True)
class MoveSequence:
    """One class: three different moves, in the order the actor makes them."""

    moves: tuple[str, ...]

    @property
    def phases(self) -> list[str]:
        """Phase names, in the order of a Diving48 vocabulary entry."""
        return list(self.moves)


# Orders vary fastest: classes 6k..6k+5 are one group, so the first classes of a small test
# dataset already hold order-only pairs.
MOVE_CLASSES: tuple[MoveSequence, ...] = tuple(
    MoveSequence(order)
    for group in combinations(MOVES, MOVES_PER_CLASS)
    for order in permutations(group)
)


def move_group(a: MoveSequence) -> frozenset[str]:
    """The set of moves a class makes: classes of one group differ only in their order."""
    return frozenset(a.moves)

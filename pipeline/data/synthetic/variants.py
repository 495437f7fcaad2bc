"""The built-in benchmarks, chosen by `synthesize.variant`: what differs between them is the
design of their classes and how a class moves; factors, scene, renderer, writer and preview
are shared.

poses: Diving48-like dives whose classes differ by the poses of a phase or by their order
(design, motion; docs/dataset.md). moves: an actor making three moves in an order, whose
single frames look alike across classes (moves_design, moves_motion; docs/dataset_moves.md).
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from pipeline.data.synthetic.design import CLASSES
from pipeline.data.synthetic.factors import ClipFactors
from pipeline.data.synthetic.motion import SEGMENT_SHARES, Motion, build_motion
from pipeline.data.synthetic.moves_design import MOVE_CLASSES, move_group
from pipeline.data.synthetic.moves_motion import MOVE_SEGMENT_SHARES, build_move_motion
from pipeline.data.synthetic.render import key_poses


@dataclass(frozen=True)
class Variant:
    """One built-in benchmark.

    vocabulary: each class's phase names (Diving48_vocab.json); phase_names: what the n-th
    phase of a class is; segment_shares: the clip's segments and their mean shares of the
    frames; motion: (label, factors) -> the actor's motion; group: label -> the set of
    classes whose frames are alike, differing only in order; preview_labels: the classes
    the preview strip shows.
    """

    vocabulary: list[list[str]]
    phase_names: tuple[str, ...]
    segment_shares: dict[str, float]
    motion: Callable[[int, ClipFactors], Motion]
    group: Callable[[int], Hashable]
    preview_labels: tuple[int, ...]

    @property
    def class_count(self) -> int:
        return len(self.vocabulary)


def _pose_motion(label: int, factors: ClipFactors) -> Motion:
    return build_motion(CLASSES[label], factors.durations, key_poses(factors), factors.jump)


def _move_motion(label: int, factors: ClipFactors) -> Motion:
    return build_move_motion(
        MOVE_CLASSES[label], factors.durations, key_poses(factors), factors.jump
    )


VARIANTS = {
    "poses": Variant(
        vocabulary=[c.phases for c in CLASSES],
        phase_names=("takeoff", "rotation", "position", "landing"),
        segment_shares=SEGMENT_SHARES,
        motion=_pose_motion,
        group=lambda label: (CLASSES[label].position, CLASSES[label].landing),
        # classes that differ from class 0 by take-off order (1), somersault direction (2),
        # body position (4) and landing (8, 16)
        preview_labels=(0, 1, 2, 4, 8, 16),
    ),
    "moves": Variant(
        vocabulary=[c.phases for c in MOVE_CLASSES],
        phase_names=("move 1", "move 2", "move 3"),
        segment_shares=MOVE_SEGMENT_SHARES,
        motion=_move_motion,
        group=lambda label: move_group(MOVE_CLASSES[label]),
        # the 6 orders of one set of moves, then one class of each other set
        preview_labels=(0, 1, 2, 3, 4, 5, 6, 12, 18),
    ),
}


def group_indices(variant: Variant, labels: np.ndarray) -> np.ndarray:
    """The frame-alike group (0, 1, ...) of each label, numbered in class order."""
    groups = {
        g: i for i, g in enumerate(dict.fromkeys(map(variant.group, range(variant.class_count))))
    }
    return np.array([groups[variant.group(int(label))] for label in labels])

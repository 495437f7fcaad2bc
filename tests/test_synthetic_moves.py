"""The moves benchmark (synthesize.variant: moves): Diving48 layout, determinism, classes that
differ only in the order of their moves, and single frames alike across every class."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_synthetic import _decode, _matching

from pipeline.config import SynthesizeParams
from pipeline.data.synthetic.design import CLASS_COUNT
from pipeline.data.synthetic.factors import sample_factors
from pipeline.data.synthetic.moves_design import MOVE_CLASSES, move_group
from pipeline.data.synthetic.moves_motion import MOVE_SEGMENT_SHARES
from pipeline.data.synthetic.render import frame_width, render_motion
from pipeline.data.synthetic.variants import VARIANTS, group_indices
from pipeline.data.synthetic.writer import SPLIT_FILES, VOCAB_FILE, synthesize_dataset

TINY_MOVES = SynthesizeParams(
    variant="moves",
    classes=7,
    train_per_class=1,
    test_per_class=1,
    size=32,
    min_frames=24,
    max_frames=28,
    workers=2,
)
MOVES = VARIANTS["moves"]


def _even_factors(seed: int, settings: SynthesizeParams):
    """A clip's factors with its three moves given the same number of frames, so classes of
    one group are exact permutations of each other's frames."""
    factors = sample_factors(np.random.default_rng(seed), settings, MOVE_SEGMENT_SHARES)
    durations = dict(factors.durations)
    moves = [durations[f"move_{slot}"] for slot in (1, 2, 3)]
    rest = sum(moves) % 3
    for slot in (1, 2, 3):
        durations[f"move_{slot}"] = sum(moves) // 3
    durations["rest_0"] += rest
    return dataclasses.replace(factors, durations=durations)


def _render(label: int, factors, settings: SynthesizeParams) -> np.ndarray:
    return render_motion(MOVES.motion(label, factors), factors, settings, noise=False)


def test_every_variant_has_the_class_count_the_params_schema_allows() -> None:
    assert {name: v.class_count for name, v in VARIANTS.items()} == {
        "poses": CLASS_COUNT,
        "moves": CLASS_COUNT,
    }
    assert len(set(MOVE_CLASSES)) == len(MOVE_CLASSES)
    assert all(len(set(c.moves)) == 3 for c in MOVE_CLASSES)  # three different moves
    # 4 groups of the 6 orders of one set of moves, in class order
    assert list(group_indices(MOVES, np.arange(24))) == [g for g in range(4) for _ in range(6)]


def test_moves_dataset_is_deterministic_and_in_the_diving48_layout(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    synthesize_dataset(out=first, settings=TINY_MOVES)
    synthesize_dataset(out=second, settings=TINY_MOVES.model_copy(update={"workers": 1}))
    vocab = json.loads((first / VOCAB_FILE).read_text())
    assert vocab == [list(c.moves) for c in MOVE_CLASSES[:7]]
    for name in SPLIT_FILES.values():
        assert (first / name).read_bytes() == (second / name).read_bytes()
    items = json.loads((first / SPLIT_FILES["train"]).read_text())
    assert sorted(item["label"] for item in items) == list(range(7))
    for item in items:
        frames = _decode(first, item["vid_name"])
        assert frames.shape == (item["end_frame"] + 1, 32, frame_width(TINY_MOVES), 3)
        assert np.array_equal(frames, _decode(second, item["vid_name"]))
    # the poses benchmark of the same settings is another dataset
    poses = tmp_path / "poses"
    synthesize_dataset(out=poses, settings=TINY_MOVES.model_copy(update={"variant": "poses"}))
    assert (poses / VOCAB_FILE).read_bytes() != (first / VOCAB_FILE).read_bytes()


@pytest.mark.parametrize(("a", "b"), [(0, 1), (0, 5), (2, 3), (6, 11), (18, 23)])
def test_classes_of_a_group_hold_the_same_frames_in_another_order(a: int, b: int) -> None:
    assert move_group(MOVE_CLASSES[a]) == move_group(MOVE_CLASSES[b])
    settings = SynthesizeParams(variant="moves", size=48, aspect=1.0)
    for seed in (a, b):
        factors = _even_factors(seed, settings)
        first, second = _render(a, factors, settings), _render(b, factors, settings)
        in_order, best = _matching(first, second)
        assert best < 0.05  # the same multiset of frames, up to rounding of a few pixels
        assert in_order > 1.0  # shown in a different order
        assert np.abs(first.mean(0) - second.mean(0)).max() < 0.5  # what a pooled feature sees


@pytest.mark.parametrize(("a", "b"), [(0, 6), (1, 13), (5, 23)])
def test_most_single_frames_of_other_groups_look_alike(a: int, b: int) -> None:
    """Classes of different groups share their rests and two of their three moves: most
    frames of one have a near-identical frame in the other, some (the third move) do not."""
    assert move_group(MOVE_CLASSES[a]) != move_group(MOVE_CLASSES[b])
    settings = SynthesizeParams(variant="moves", size=48, aspect=1.0)
    factors = _even_factors(0, settings)
    first, second = _render(a, factors, settings), _render(b, factors, settings)
    flat_a = first.reshape(len(first), -1).astype(float)
    flat_b = second.reshape(len(second), -1).astype(float)
    nearest = np.abs(flat_a[:, None] - flat_b[None]).mean(2).min(1)  # (T,) grey levels
    alike = (nearest < 0.05).mean()
    assert 0.6 <= alike < 0.95

"""The equal training budget of self-training: fixed optimiser steps per round, a fixed share
of labeled samples in every batch, labeled-only batches when nothing was accepted."""

import numpy as np
import pytest

from pipeline.config import ParamsError, RetrainParams, parse_params
from pipeline.train.mixed_sampler import MixedBatchSampler, labeled_per_batch


def _batches(sampler: MixedBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_batch_holds_the_same_count_of_labeled_and_pseudo_labeled_samples():
    sampler = MixedBatchSampler(
        labeled=5, pseudo_labeled=40, batch_size=8, labeled_share=0.5, steps_per_epoch=30
    )
    batches = _batches(sampler)
    assert len(batches) == len(sampler) == 30
    for batch in batches:
        assert len(batch) == 8 and sum(i < 5 for i in batch) == 4
        assert all(0 <= i < 45 for i in batch)
    counts = np.bincount(np.concatenate(batches), minlength=45)
    # each kind cycles through its samples: the 5 labeled ones 24 times each, pseudo 3 each
    assert counts[:5].tolist() == [24] * 5 and counts[5:].tolist() == [3] * 40
    assert _batches(sampler) == batches and _batches(sampler, 1) != batches


def test_the_budget_does_not_depend_on_how_many_pseudo_labels_a_round_accepted():
    steps = {
        accepted: sum(
            len(b)
            for b in _batches(
                MixedBatchSampler(
                    labeled=12, pseudo_labeled=accepted, batch_size=32,
                    labeled_share=0.5, steps_per_epoch=50,
                )
            )
        )
        for accepted in (0, 3, 400, 5000)
    }  # fmt: skip
    assert set(steps.values()) == {50 * 32}
    # nothing accepted (and supervised): labeled-only batches for the same steps
    only_labeled = MixedBatchSampler(12, 0, 32, 0.5, 50)
    assert only_labeled.labeled_per_batch == 32
    assert all(max(batch) < 12 for batch in _batches(only_labeled))


def test_the_labeled_count_rounds_the_share_and_keeps_both_kinds():
    assert labeled_per_batch(32, 0.5, 100) == 16
    assert labeled_per_batch(32, 0.25, 100) == 8
    assert labeled_per_batch(4, 0.01, 100) == 1 and labeled_per_batch(4, 0.99, 100) == 3
    assert labeled_per_batch(32, 0.5, 0) == 32


def test_processes_split_every_batch_without_overlap():
    whole = _batches(MixedBatchSampler(6, 20, 8, 0.5, 10, seed=3))
    shares = [
        _batches(MixedBatchSampler(6, 20, 8, 0.5, 10, seed=3, rank=rank, world_size=2))
        for rank in (0, 1)
    ]
    for step, batch in enumerate(whole):
        assert sorted(shares[0][step] + shares[1][step]) == sorted(batch)


def test_impossible_budgets_are_refused():
    with pytest.raises(ValueError, match="at least one labeled sample"):
        MixedBatchSampler(0, 10, 8, 0.5, 10)
    with pytest.raises(ValueError, match="labeled_share must lie in"):
        MixedBatchSampler(3, 10, 8, 1.0, 10)
    with pytest.raises(ValueError, match="steps \\(100\\) must be a multiple of epochs \\(3\\)"):
        RetrainParams(steps=100, epochs=3)
    assert RetrainParams(steps=150, epochs=3).steps_per_epoch == 50
    with pytest.raises(ParamsError, match="self_training.labeled_share"):
        parse_params({"self_training": {"labeled_share": 0.0}})

"""GITDL, hard-negative mining, the alignability score, the metric objective and the
class-balanced sampler, each against numbers worked out by hand in the test."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.config import MetricParams
from pipeline.models.score import AlignabilityScore, fit_score
from pipeline.objectives.gitdl import gitdl_loss
from pipeline.objectives.metric import alignability_metric_loss
from pipeline.objectives.triplet import alignability_triplet_loss, hard_triplets
from pipeline.train.balanced_sampler import ClassBalancedBatchSampler
from pipeline.train.metric import batch_classes

# the paper's GITDL temperature, discount peak and width (params.yaml gitdl)
PAPER_GITDL = {"tau": 0.1, "beta": 0.99, "sigma": 0.2}

# ============ GITDL ============


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _gitdl_by_hand(zg, zl, t, n, tau, beta, sigma) -> float:
    """One video, both directions, written as the formula reads."""

    def direction(anchors, candidates):
        total = 0.0
        for i in range(n):
            positive = math.exp(_cos(anchors[i], candidates[i]) / tau)
            negatives = 0.0
            for j in range(n):
                if j != i:
                    w = 1 - beta * math.exp(-((t[i] - t[j]) ** 2) / (2 * sigma**2))
                    negatives += w * math.exp(_cos(anchors[i], candidates[j]) / tau)
            total += -math.log(positive / (positive + negatives))
        return total / n

    return 0.5 * (direction(zg, zl) + direction(zl, zg))


def test_gitdl_equals_hand_computation():
    zg = [
        [[1.0, 0.0, 0.5], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0]],
        [[0.5, 0.5, 0.0], [1.0, -1.0, 0.2], [9.0, 9.0, 9.0]],  # last frame is padding
    ]
    zl = [
        [[0.9, 0.1, 0.4], [0.0, 1.0, 0.3], [0.4, 0.0, 1.0]],
        [[0.4, 0.6, 0.1], [0.8, -1.0, 0.0], [-9.0, 1.0, 3.0]],
    ]
    t = [[0.0, 0.25, 0.5], [0.1, 0.9, 0.0]]
    valid = torch.tensor([[True, True, True], [True, True, False]])
    tau, beta, sigma = 0.1, 0.99, 0.2
    loss = gitdl_loss(
        torch.tensor(zg, dtype=torch.float64),
        torch.tensor(zl, dtype=torch.float64),
        torch.tensor(t, dtype=torch.float64),
        valid,
        tau=tau,
        beta=beta,
        sigma=sigma,
    )
    expected = 0.5 * (
        _gitdl_by_hand(zg[0], zl[0], t[0], 3, tau, beta, sigma)
        + _gitdl_by_hand(zg[1], zl[1], t[1], 2, tau, beta, sigma)
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_gitdl_weights_spare_near_frames_and_need_a_frame():
    # identical clips: the loss comes from the negatives only, and nearer negatives weigh less
    z = F.normalize(torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    valid = torch.ones(1, 4, dtype=torch.bool)
    near = gitdl_loss(z, z, torch.tensor([[0.0, 0.01, 0.02, 0.03]]), valid, **PAPER_GITDL)
    far = gitdl_loss(z, z, torch.tensor([[0.0, 0.3, 0.6, 0.9]]), valid, **PAPER_GITDL)
    assert near < far
    with pytest.raises(ValueError, match="at least one video"):
        gitdl_loss(z, z, torch.zeros(1, 4), torch.zeros(1, 4, dtype=torch.bool), **PAPER_GITDL)


# ============ triplets and score ============


def test_fit_score_separates_the_pairs_at_their_own_scale():
    # distances a thousand times below the scale the head was built for: trained for a few
    # steps it would stay flat; fitted, it tells same-class pairs from the others
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    same = labels[:, None] == labels[None, :]
    distances = torch.where(same, 0.001, 0.004) + 0.0005 * torch.rand(6, 6)
    score = AlignabilityScore(hidden=16, distance_scale=16.0)
    loss = fit_score(score, distances, labels, steps=300, lr=0.05)
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert score.distance_scale.item() == pytest.approx(distances[off_diagonal].mean().item())
    scores = score(distances)
    assert scores[same & off_diagonal].min() > 0.9 and scores[~same].max() < 0.1
    assert loss < 0.1


def test_fit_score_on_a_collapsed_encoder_ends_at_a_constant_score():
    labels = torch.tensor([0, 0, 1, 1])
    score = AlignabilityScore(hidden=16, distance_scale=16.0)
    fit_score(score, torch.zeros(4, 4), labels, steps=300, lr=0.05)
    assert score.distance_scale.item() == 16.0
    torch.testing.assert_close(score(torch.zeros(4, 4)), torch.full((4, 4), 0.5))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.tensor([0, 0, 1, 1, 2])
    d = torch.tensor(
        [
            [0.0, 0.5, 0.45, 0.9, 0.62],
            [0.5, 0.0, 0.2, 0.7, 1.0],
            [0.45, 0.2, 0.0, 0.3, 0.35],
            [0.9, 0.7, 0.3, 0.0, 0.8],
            [0.62, 1.0, 0.35, 0.8, 0.0],
        ],
        dtype=torch.float64,
    )
    return d, labels


def test_mining_picks_exactly_the_hard_negatives():
    d, labels = _batch()
    # positives (0, 1), (1, 0) at 0.5 and (2, 3), (3, 2) at 0.3; clip 4 is alone in class 2.
    # Hard when D(a, n) < D(a, p) + 0.1; not hard: (0, 1, 3) 0.9, (0, 1, 4) 0.62,
    # (1, 0, 3) 0.7, (1, 0, 4) 1.0, (2, 3, 0) 0.45, and every negative of anchor 3.
    expected = {(0, 1, 2), (1, 0, 2), (2, 3, 1), (2, 3, 4)}
    got = {tuple(row) for row in hard_triplets(d, labels, margin=0.1).tolist()}
    assert got == expected
    loss, count = alignability_triplet_loss(d, labels, margin=0.1)
    hinges = [0.5 - 0.45 + 0.1, 0.5 - 0.2 + 0.1, 0.3 - 0.2 + 0.1, 0.3 - 0.35 + 0.1]  # in order
    assert count == 4
    assert loss.item() == pytest.approx(sum(hinges) / 4)


def test_no_hard_triplet_gives_a_connected_zero():
    d, labels = _batch()
    d = d.clone().requires_grad_(True)
    loss, count = alignability_triplet_loss(d, labels, margin=-10.0)
    assert count == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(d.grad, torch.zeros_like(d))


def test_score_starts_at_one_half_and_its_loss_weighs_both_kinds_of_pair_alike():
    d, labels = _batch()
    score = AlignabilityScore(hidden=4, distance_scale=2.0).double()
    assert torch.equal(score(d), torch.full_like(d, 0.5))
    with torch.no_grad():
        score.phi[2].weight.copy_(torch.tensor([[0.5, -1.0, 0.25, 2.0]]))
        score.phi[2].bias.fill_(0.1)
    logits = score.logits(d)
    w1, b1 = score.phi[0].weight[:, 0].tolist(), score.phi[0].bias.tolist()
    positives, negatives = [], []
    for a in range(5):
        for b in range(5):
            if a == b:
                continue
            x = d[a, b].item() / 2.0
            hidden = [max(0.0, w * x + c) for w, c in zip(w1, b1, strict=True)]
            logit = 0.1 + sum(v * h for v, h in zip([0.5, -1.0, 0.25, 2.0], hidden, strict=True))
            assert logits[a, b].item() == pytest.approx(logit)
            p = 1 / (1 + math.exp(-logit))
            if labels[a] == labels[b]:
                positives.append(-math.log(p))
            else:
                negatives.append(-math.log(1 - p))
    expected = 0.5 * (sum(positives) / len(positives) + sum(negatives) / len(negatives))
    assert positives and negatives and len(positives) != len(negatives)
    assert score.loss(d, labels).item() == pytest.approx(expected)
    restored = AlignabilityScore(hidden=4).double()
    restored.load_state_dict(score.state_dict())
    assert torch.equal(restored(d), score(d))


def test_metric_loss_variants():
    d, labels = _batch()
    score = AlignabilityScore(hidden=4).double()
    torch.nn.init.normal_(score.phi[2].weight, generator=torch.Generator().manual_seed(1))
    trip, _ = alignability_triplet_loss(d, labels, 0.1)
    bce = score.loss(d, labels)
    both = alignability_metric_loss(d, labels, score, 0.1, 0.5, "triplet_score")
    assert both["total"].item() == pytest.approx(trip.item() + 0.5 * bce.item())
    assert both["n_triplets"].item() == 4
    # triplet only: the encoder's distances get the triplet gradient alone
    leaf = d.clone().requires_grad_(True)
    alignability_metric_loss(leaf, labels, score, 0.1, 0.5, "triplet")["total"].backward()
    reference = d.clone().requires_grad_(True)
    alignability_triplet_loss(reference, labels, 0.1)[0].backward()
    torch.testing.assert_close(leaf.grad, reference.grad)
    assert score.phi[2].weight.grad is not None  # the score head still learns
    only_score = alignability_metric_loss(d, labels, score, 0.1, 0.5, "score")
    assert only_score["total"].item() == pytest.approx(bce.item())
    with pytest.raises(ValueError, match="triplet_score, triplet, score"):
        alignability_metric_loss(d, labels, score, 0.1, 0.5, "contrastive")


# ============ class-balanced sampler ============


def _labels() -> np.ndarray:
    return np.array([0] * 12 + [1] * 9 + [2] * 1 + [3] * 6 + [4] * 4)


def test_sampler_batches_are_p_classes_by_k_clips():
    labels = _labels()
    sampler = ClassBalancedBatchSampler(labels, classes_per_batch=3, clips_per_class=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(len(labels) / 6)
    for batch in batches:
        assert len(batch) == 6
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 3 and (counts == 2).all()
    # a class of one clip repeats it: two augmented draws still make a positive pair
    for batch in batches:
        single = [i for i in batch if labels[i] == 2]
        assert single in ([], [21, 21])


def test_sampler_is_deterministic_and_differs_by_epoch_and_rank():
    labels = _labels()

    def draw(seed, epoch, rank=0, world_size=1):
        sampler = ClassBalancedBatchSampler(labels, 2, 2, seed, rank, world_size)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw(0, 3) == draw(0, 3)
    assert draw(0, 3) != draw(0, 4) and draw(0, 3) != draw(1, 3)
    rank0, rank1 = draw(0, 3, 0, 2), draw(0, 3, 1, 2)
    assert len(rank0) == len(rank1) == math.ceil(len(labels) / (4 * 2))
    assert all(a != b for a, b in zip(rank0, rank1, strict=True))


def test_sampler_rejects_impossible_batches():
    with pytest.raises(ValueError, match="clips_per_class must be >= 2"):
        ClassBalancedBatchSampler(_labels(), 2, 1)
    with pytest.raises(ValueError, match=r"classes_per_batch must lie in \[2, 5\]"):
        ClassBalancedBatchSampler(_labels(), 6, 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ClassBalancedBatchSampler(np.zeros(5, dtype=int), 2, 2)
    with pytest.raises(ValueError, match="rank must lie"):
        ClassBalancedBatchSampler(_labels(), 2, 2, rank=2, world_size=2)


def test_batches_hold_every_labeled_class_when_there_are_fewer_than_the_params_ask():
    metric = MetricParams(batch_size=48, clips_per_class=2)  # P = 24 classes per batch
    open_world_labels = [c for c in range(16) for _ in range(10)]  # 8 of 24 classes novel
    assert batch_classes(metric, open_world_labels) == 16
    sampler = ClassBalancedBatchSampler(
        open_world_labels, batch_classes(metric, open_world_labels), metric.clips_per_class
    )
    assert all(len(batch) == 32 for batch in sampler)
    assert batch_classes(metric, [c for c in range(30) for _ in range(3)]) == 24

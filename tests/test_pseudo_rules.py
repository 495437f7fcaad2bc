"""The non-parametric classifier, the pseudo-label acceptance rules and a round's statistics,
on hand-built inputs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import PseudoLabelParams
from pipeline.pseudo.acceptance import decide
from pipeline.pseudo.nonparametric import class_scores, nonparametric_probs, select_exemplars
from pipeline.pseudo.round_table import COLUMNS, round_statistics

# ============ non-parametric classifier ============


def test_exemplars_take_at_most_per_class_clips_of_each_class():
    labels = np.array([2] * 20 + [0] * 3 + [1] * 16 + [2] * 4)
    chosen = select_exemplars(labels, per_class=15, rng=np.random.default_rng(0))
    assert len(set(chosen.tolist())) == len(chosen)
    classes, counts = np.unique(labels[chosen], return_counts=True)
    assert classes.tolist() == [0, 1, 2] and counts.tolist() == [3, 15, 15]
    assert labels[chosen].tolist() == sorted(labels[chosen].tolist())
    again = select_exemplars(labels, per_class=15, rng=np.random.default_rng(0))
    other = select_exemplars(labels, per_class=15, rng=np.random.default_rng(1))
    assert np.array_equal(chosen, again) and not np.array_equal(chosen, other)


def test_class_scores_average_each_class_and_mark_missing_ones():
    pair_scores = torch.tensor([[0.9, 0.7, 0.2, 0.4], [0.1, 0.3, 0.8, 0.6]])
    exemplar_labels = np.array([0, 0, 2, 2])
    scores = class_scores(pair_scores, exemplar_labels, num_classes=3)
    expected = torch.tensor([[0.8, -math.inf, 0.3], [0.2, -math.inf, 0.7]])
    torch.testing.assert_close(scores, expected)
    probs = nonparametric_probs(scores, tau=0.1)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))
    assert (probs[:, 1] == 0).all()
    assert probs[0, 0].item() == pytest.approx(1 / (1 + math.exp(-(0.8 - 0.3) / 0.1)))
    # a larger temperature flattens the distribution
    assert nonparametric_probs(scores, tau=1.0)[0, 0] < probs[0, 0]
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\)"):
        class_scores(pair_scores, exemplar_labels, num_classes=2)


# ============ acceptance rules ============

P_G = np.array(
    [
        [0.70, 0.20, 0.10],  # confident in class 0
        [0.40, 0.35, 0.25],  # unsure
        [0.05, 0.15, 0.80],  # confident in class 2
    ]
)


def test_confidence():
    decision = decide("confidence", P_G, threshold=0.6)
    assert decision.label.tolist() == [0, 0, 2]
    np.testing.assert_allclose(decision.confidence, [0.70, 0.40, 0.80])
    assert decision.accepted.tolist() == [True, False, True]


def test_uncertainty():
    decision = decide(
        "uncertainty", torch.tensor(P_G), 0.6, uncertainty=[0.05, 0.01, 0.2], max_uncertainty=0.1
    )
    assert decision.label.tolist() == [0, 0, 2]
    assert decision.accepted.tolist() == [True, False, False]


def test_verification():
    scores = np.array([[0.5, 0.9, 0.9], [0.9, 0.9, 0.9], [0.1, 0.1, 0.65]])
    decision = decide("verification", P_G, 0.6, class_scores=scores, verification_threshold=0.6)
    # clip 0 passes the confidence bar but its label's alignability score is 0.5
    assert decision.accepted.tolist() == [False, False, True]


def test_collaborative():
    p_f = np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    decision = decide("collaborative", P_G, 0.6, p_f=p_f)
    # averages: [0.4, 0.5, 0.1], [0.65, 0.2, 0.15], [0.075, 0.125, 0.8]
    assert decision.label.tolist() == [1, 0, 2]
    np.testing.assert_allclose(decision.confidence, [0.5, 0.65, 0.8])
    assert decision.accepted.tolist() == [False, True, True]


def test_the_default_collaborative_rule_filters_what_confidence_accepts():
    settings = PseudoLabelParams()
    bar = settings.threshold_for("collaborative")
    assert bar == settings.threshold == 0.6  # the paper's delta, on the average
    # g is sure (0.9), f disagrees: the average 0.5 stays below delta, so the clip that
    # confidence accepts is rejected
    p_g = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.3, 0.2]])
    p_f = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.9, 0.05, 0.05]])
    confidence = decide("confidence", p_g, settings.threshold)
    collaborative = decide("collaborative", p_g, bar, p_f=p_f)
    assert confidence.accepted.tolist() == [True, True, False]
    assert collaborative.accepted.tolist() == [False, True, True]  # averages 0.5, 0.8, 0.7
    assert collaborative.label.tolist() == [0, 0, 0]


def test_the_collaborative_rule_accepts_exactly_when_the_average_reaches_delta():
    rng = np.random.default_rng(0)
    p_g, p_f = rng.dirichlet(np.ones(5) * 0.3, size=(2, 400))
    decision = decide("collaborative", p_g, 0.6, p_f=p_f)
    average = (p_f + p_g) / 2
    assert decision.accepted.tolist() == (average.max(axis=1) >= 0.6).tolist()
    np.testing.assert_array_equal(decision.label, average.argmax(axis=1))
    confident = p_g.max(axis=1) >= 0.6
    # a filter, not a superset: some clips g alone would take are rejected
    assert (confident & ~decision.accepted).sum() > 0
    # the superseded bar of 0.3 accepted every clip confidence accepts
    assert decide("collaborative", p_g, 0.3, p_f=p_f).accepted[confident].all()


def test_missing_inputs_and_unknown_strategies_fail_early():
    with pytest.raises(ValueError, match="'collaborative' needs p_f"):
        decide("collaborative", P_G, 0.6)
    with pytest.raises(ValueError, match="'verification' needs class_scores"):
        decide("verification", P_G, 0.6)
    with pytest.raises(ValueError, match="'uncertainty' needs uncertainty"):
        decide("uncertainty", P_G, 0.6)
    with pytest.raises(ValueError, match="confidence, uncertainty, verification, collaborative"):
        decide("entropy", P_G, 0.6)
    with pytest.raises(ValueError, match=r"p_f must have shape \(3, 3\)"):
        decide("collaborative", P_G, 0.6, p_f=np.ones((3, 2)))


def test_a_round_reports_its_own_and_the_confidence_rules_count_and_accuracy():
    # four clips: g is sure of 0 and 1 (1 wrongly); the collaborative rule took 0 and 2
    table = pd.DataFrame(
        {
            "video_id": ["a", "b", "c", "d"],
            "round": "round_1",
            "label": [0, 1, 2, 0],
            "label_name": ["x", "y", "z", "x"],
            "confidence": [0.8, 0.5, 0.7, 0.2],
            "accepted": [True, False, True, False],
            "f_label": [0, 2, 2, 1],
            "f_confidence": [0.7, 0.6, 0.9, 0.4],
            "g_label": [0, 1, 1, 0],
            "g_confidence": [0.9, 0.8, 0.5, 0.3],
            "true_label": [0.0, 2.0, 2.0, np.nan],
        },
        columns=COLUMNS,
    )
    stats = round_statistics(table, confidence_threshold=0.6)
    assert stats["pseudo_labels"] == 2 and stats["pseudo_label_accuracy"] == 1.0
    assert stats["confidence_pseudo_labels"] == 2
    assert stats["confidence_pseudo_label_accuracy"] == 0.5
    assert "confidence_pseudo_labels" not in round_statistics(table)

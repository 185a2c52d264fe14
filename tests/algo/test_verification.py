"""Tests for laser.algo.verification: F1 and AUROC (E8, section 6), calibration and length bias."""

import itertools
import math

import pytest
import torch

from laser.algo.verification import (
    auroc,
    best_threshold_f1,
    difficulty_auroc,
    expected_calibration_error,
    grouped_auroc,
    length_correlations,
    self_verify_metrics,
    spearman,
)


def test_self_verify_metrics_hand_values():
    scores = torch.tensor([0.9, 0.6, 0.4, 0.7, 0.8, 0.1])
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    m = self_verify_metrics(scores, rewards)
    # correct rows predicted correct: 0.9, 0.6 -> 2/3; incorrect predicted incorrect: 0.1 -> 1/3
    assert m["self_verify/acc_correct"].item() == pytest.approx(2 / 3)
    assert m["self_verify/acc_incorrect"].item() == pytest.approx(1 / 3)
    # paper F1 = 2 * (2/3)(1/3) / (2/3 + 1/3) = 4/9
    assert m["self_verify/f1"].item() == pytest.approx(4 / 9)
    # tp = 2, fp = 2 (0.7, 0.8), fn = 1 (0.4) -> 2tp / (2tp + fp + fn) = 4/7
    assert m["self_verify/pr_f1"].item() == pytest.approx(4 / 7)
    # pairs (pos > neg): 0.9 beats 3, 0.6 beats 0.1, 0.4 beats 0.1 -> 5/9
    assert m["self_verify/auroc"].item() == pytest.approx(5 / 9)


def test_best_threshold_f1_hand_values():
    # at 0.5: 2 of 3 correct accepted, 1 of 2 incorrect rejected, F1 4/7; at 0.55 (accept > 0.55)
    # the incorrect 0.55 is rejected too: 2/3 and 1, F1 0.8, the best
    scores = torch.tensor([0.9, 0.6, 0.4, 0.55, 0.2])
    rewards = torch.tensor([1.0, 1, 1, 0, 0])
    assert self_verify_metrics(scores, rewards)["self_verify/f1"].item() == pytest.approx(4 / 7)
    f1, threshold = best_threshold_f1(scores, rewards)
    assert f1.item() == pytest.approx(0.8) and threshold.item() == pytest.approx(0.55)
    valid = torch.tensor([True, True, True, False, True])  # without the 0.55 row: accept > 0.2
    assert best_threshold_f1(scores, rewards, valid)[0].item() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_best_threshold_f1_is_the_brute_force_maximum(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 12, (40,), generator=g).float() / 10  # ties
    rewards = (torch.rand(40, generator=g) < 0.6).float()
    cuts = [-1.0, *torch.unique(scores).tolist()]
    brute = max(self_verify_metrics(scores, rewards, threshold=t)["self_verify/f1"].item() for t in cuts)
    f1, threshold = best_threshold_f1(scores, rewards)
    assert f1.item() == pytest.approx(brute, abs=1e-6)
    assert self_verify_metrics(scores, rewards, threshold=threshold.item())[
        "self_verify/f1"
    ].item() == pytest.approx(brute, abs=1e-6)
    assert f1.item() >= self_verify_metrics(scores, rewards)["self_verify/f1"].item() - 1e-6


def test_best_threshold_f1_is_nan_for_one_class():
    f1, threshold = best_threshold_f1(torch.tensor([0.2, 0.7]), torch.tensor([1.0, 1.0]))
    assert math.isnan(f1.item()) and math.isnan(threshold.item())


def test_self_verify_threshold_is_strict_and_valid_mask_drops_rows():
    scores = torch.tensor([0.5, 0.2, 0.9, 0.9])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    valid = torch.tensor([True, True, False, True])
    m = self_verify_metrics(scores, rewards, valid)
    # score 0.5 is "incorrect" (not > 0.5): acc_correct = 1/2 (0.9 only); row 2 dropped
    assert m["self_verify/acc_correct"].item() == pytest.approx(0.5)
    assert m["self_verify/acc_incorrect"].item() == pytest.approx(1.0)
    assert m["self_verify/auroc"].item() == pytest.approx(1.0)  # 0.5 > 0.2 and 0.9 > 0.2


def test_self_verify_f1_is_zero_when_both_accuracies_are_zero():
    m = self_verify_metrics(torch.tensor([0.1, 0.9]), torch.tensor([1.0, 0.0]))
    assert m["self_verify/f1"].item() == 0.0
    assert m["self_verify/pr_f1"].item() == 0.0
    assert m["self_verify/auroc"].item() == 0.0


def _brute_force_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pairwise_count_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 5, (40,), generator=gen).float() / 4  # many ties
    labels = torch.rand(40, generator=gen) < 0.4
    expected = _brute_force_auroc(scores.tolist(), labels.tolist())
    assert auroc(scores, labels).item() == pytest.approx(expected, abs=1e-12)


def test_auroc_is_nan_for_an_empty_class():
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])).item())
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([0, 0])).item())


def test_grouped_auroc_hand_values():
    scores = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.3, 0.3], [0.4, 0.6, 0.8]])
    labels = torch.tensor([[1, 0, 0], [1, 0, 1], [1, 1, 1]])
    mean, count = grouped_auroc(scores, labels)
    # group 0: 0.9 beats 0.2 and 0.5 -> 1; group 1: positives 0.1, 0.3 vs negative 0.3 -> (0 + 0.5) / 2
    # group 2 has no negative and is skipped
    assert count.item() == 2
    assert mean.item() == pytest.approx((1.0 + 0.25) / 2)


def test_grouped_auroc_ignores_prompt_difficulty_that_pooled_auroc_rewards():
    # every sample of the easy prompt outscores every sample of the hard one, but within each prompt
    # the wrong answer scores higher: pooled AUROC looks good, within-prompt ranking is inverted
    scores = torch.tensor([[0.8, 0.8, 0.8, 0.9], [0.1, 0.2, 0.2, 0.2]])
    labels = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert auroc(scores, labels).item() == pytest.approx(9 / 16)  # each 0.8 beats the three 0.2
    mean, _ = grouped_auroc(scores, labels)
    assert mean.item() == 0.0


def test_grouped_auroc_valid_mask_and_empty():
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    labels = torch.tensor([[1, 0, 0]])
    valid = torch.tensor([[True, False, True]])
    mean, count = grouped_auroc(scores, labels, valid)
    assert (mean.item(), count.item()) == (0.0, 1)
    mean, count = grouped_auroc(scores, torch.ones(1, 3), valid)
    assert math.isnan(mean.item()) and count.item() == 0


@pytest.mark.parametrize("seed", range(3))
def test_grouped_auroc_equals_mean_of_per_group_auroc(seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (6, 8), generator=gen).float()
    labels = torch.rand(6, 8, generator=gen) < 0.5
    per_group = [auroc(s, y) for s, y in zip(scores, labels, strict=True)]
    expected = [a.item() for a in per_group if not math.isnan(a.item())]
    mean, count = grouped_auroc(scores, labels)
    assert count.item() == len(expected)
    assert mean.item() == pytest.approx(sum(expected) / len(expected), abs=1e-12)


def test_difficulty_auroc_hand_values():
    # prompt 0: scored half (1, 0), accuracy of the other half (1, 1) = 1; prompt 1: scored (0, 0),
    # other half 0. Positive {1.0} vs negatives {1.0, 0, 0}: (0.5 + 1 + 1) / 3
    labels = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]])
    assert difficulty_auroc(labels).item() == pytest.approx(2.5 / 3)
    # every prompt equally hard: the difficulty-only score ties everything
    assert difficulty_auroc(torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]])).item() == 0.5


def test_difficulty_auroc_valid_mask_and_bad_shape():
    labels = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]])
    valid = torch.tensor([[True, False, True, True], [True, True, True, True]])
    # the masked negative of prompt 0 drops out: positive 1.0 beats both 0s
    assert difficulty_auroc(labels, valid).item() == 1.0
    with pytest.raises(ValueError, match="at least 2 samples"):
        difficulty_auroc(torch.ones(3, 1))


def test_difficulty_auroc_approaches_the_true_difficulty_ranking():
    # with many samples per prompt, the split-half estimate ranks like the true accuracies
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(300, 1, generator=gen)
    labels = torch.rand(300, 400, generator=gen) < p
    truth = auroc(p.expand(-1, 200).flatten(), labels[:, :200].flatten())
    assert difficulty_auroc(labels).item() == pytest.approx(truth.item(), abs=0.01)
    # and it is a lower bound: with 2 samples per prompt it falls below the true-accuracy AUROC
    assert difficulty_auroc(labels[:, :2]).item() < truth.item() - 0.05


def test_ece_is_zero_for_a_perfectly_calibrated_score():
    # bin [0.2, 0.3): four rows at 0.25, one correct; bin [0.7, 0.8): four at 0.75, three correct
    probs = torch.tensor([0.25] * 4 + [0.75] * 4)
    labels = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(probs, labels, 10).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("constant", [0.0, 0.3, 1.0])
def test_ece_of_a_constant_score_is_its_distance_to_the_base_rate(constant):
    labels = torch.tensor([1, 0, 0, 1, 0, 0, 0, 0])  # base rate 1/4
    probs = torch.full((8,), constant)
    ece = expected_calibration_error(probs, labels, 10)
    assert ece.item() == pytest.approx(abs(0.25 - constant))


def test_ece_hand_values_with_two_bins():
    # 2 bins [0, 0.5), [0.5, 1]: bin 0 holds 0.1, 0.3 (one correct): |1/2 - 0.2| = 0.3;
    # bin 1 holds 0.5, 0.9, 1.0 (all correct, 1.0 in the closed last bin): |1 - 0.8| = 0.2
    probs = torch.tensor([0.1, 0.3, 0.5, 0.9, 1.0])
    labels = torch.tensor([0, 1, 1, 1, 1])
    assert expected_calibration_error(probs, labels, 2).item() == pytest.approx(2 / 5 * 0.3 + 3 / 5 * 0.2)
    # one bin: |4/5 - 2.8/5| = 0.24
    assert expected_calibration_error(probs, labels, 1).item() == pytest.approx(0.24)


def test_ece_rejects_bad_input_and_is_nan_without_rows():
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([1]), 0)
    for bad in (1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="clip"):
            expected_calibration_error(torch.tensor([0.5, bad]), torch.tensor([1, 0]))
    assert math.isnan(expected_calibration_error(torch.zeros(0), torch.zeros(0)).item())


@pytest.mark.parametrize("seed", range(3))
def test_ece_matches_torchmetrics_below_one(seed):
    from torchmetrics.functional.classification import binary_calibration_error

    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(200, generator=gen, dtype=torch.float64) * 0.999  # no probability of exactly 1
    labels = torch.rand(200, generator=gen, dtype=torch.float64) < probs
    ours = expected_calibration_error(probs, labels, 15)
    theirs = binary_calibration_error(probs, labels.long(), n_bins=15, norm="l1")
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-9)


def test_spearman_hand_values_with_ties():
    # ranks of x: (1, 2.5, 2.5, 4); of y: (1, 2, 3, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, -.5, .5, 1.5)
    # cov sum 4.5; sqrt(4.5 * 5) -> 4.5 / sqrt(22.5)
    x = torch.tensor([1.0, 2.0, 2.0, 5.0])
    y = torch.tensor([10.0, 20.0, 30.0, 40.0])
    assert spearman(x, y).item() == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman(y, y.exp()).item() == pytest.approx(1.0)  # any increasing map
    assert spearman(y, -y).item() == pytest.approx(-1.0)


def test_spearman_is_nan_when_undefined():
    assert math.isnan(spearman(torch.ones(4), torch.arange(4.0)).item())
    assert math.isnan(spearman(torch.tensor([1.0]), torch.tensor([2.0])).item())
    assert math.isnan(spearman(torch.zeros(0), torch.zeros(0)).item())


@pytest.mark.parametrize("seed", range(3))
def test_spearman_matches_torchmetrics(seed):
    from torchmetrics.functional import spearman_corrcoef

    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (60,), generator=gen).double()  # ties
    y = x + torch.randn(60, generator=gen, dtype=torch.float64) * 4
    assert spearman(x, y).item() == pytest.approx(spearman_corrcoef(x, y).item(), abs=1e-5)


def test_length_correlations_split_by_class():
    # correct responses are short and score high, incorrect long and score low: pooled the score falls
    # with length, but within each class it rises with length
    scores = torch.tensor([0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 5.0])
    lengths = torch.tensor([10, 11, 12, 20, 21, 22, 99])
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    valid = torch.tensor([True] * 6 + [False])
    m = length_correlations(scores, lengths, rewards, valid)
    # pooled ranks: scores (4, 5, 6, 1, 2, 3), lengths (1, ..., 6); centred (.5, 1.5, 2.5, -2.5,
    # -1.5, -.5) and (-2.5, -1.5, -.5, .5, 1.5, 2.5): products sum to -9.5, squares to 17.5 each
    assert m["self_verify/length_spearman"].item() == pytest.approx(-9.5 / 17.5)
    assert m["self_verify/length_spearman_correct"].item() == pytest.approx(1.0)
    assert m["self_verify/length_spearman_incorrect"].item() == pytest.approx(1.0)


def test_self_verify_metrics_calibration_uses_the_clipped_score():
    # raw scores 2.0 and -1.0 clip to 1 and 0: both right with certainty -> ECE 0
    m = self_verify_metrics(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]), num_bins=5)
    assert m["self_verify/ece"].item() == 0.0
    # unclipped 0.6 on a wrong answer and 0.6 on a right one: one bin, |1/2 - 0.6| = 0.1
    m = self_verify_metrics(torch.tensor([0.6, 0.6, 0.9]), torch.tensor([1.0, 0.0, 1.0]),
                            torch.tensor([True, True, False]))  # fmt: skip
    assert m["self_verify/ece"].item() == pytest.approx(0.1)

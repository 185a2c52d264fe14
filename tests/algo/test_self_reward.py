"""Tests for laser.algo.self_reward: score (E3), c_ref check (E2), MSE (E5), metrics (E8)."""

import itertools
import math

import pytest
import torch

from laser.algo.self_reward import (
    auroc,
    check_c_ref,
    difficulty_auroc,
    grouped_auroc,
    self_reward_mse,
    self_reward_score,
    self_verify_metrics,
)


def test_self_reward_score_hand_values():
    z_logp = torch.tensor([-13.0, -23.0, -18.0])
    # 0.1 * (z + 23) = (1.0, 0.0, 0.5)
    torch.testing.assert_close(self_reward_score(z_logp, -23.0, 0.1), torch.tensor([1.0, 0.0, 0.5]))
    c_ref = torch.tensor([-20.0, -25.0, -18.0])
    # 0.5 * (7, 2, 0)
    torch.testing.assert_close(self_reward_score(z_logp, c_ref, 0.5), torch.tensor([3.5, 1.0, 0.0]))


def test_check_c_ref_rejects_a_target_that_is_not_rare():
    # -5 + 1/0.1 = 5 > -3; the fix is beta_v >= 1 / (-3 - (-5)) = 0.5
    with pytest.raises(ValueError, match="beta_v") as err:
        check_c_ref(-5.0, 0.1)
    assert "0.5" in str(err.value)
    assert "c_ref=-5.0" in str(err.value)


def test_check_c_ref_accepts_paper_setting_and_the_boundary():
    check_c_ref(-23.0, 0.1)  # target -13, probability ~2e-6
    check_c_ref(-13.0, 0.1)  # target exactly -3


def test_check_c_ref_message_when_no_beta_v_helps():
    with pytest.raises(ValueError, match="rarer"):
        check_c_ref(-2.0, 10.0)  # target -1.9 > -3 and c_ref itself above -3


@pytest.mark.parametrize(
    ("c_ref", "beta_v"), [(-23.0, 0.0), (-23.0, -0.1), (float("nan"), 0.1), (-math.inf, 0.1)]
)
def test_check_c_ref_rejects_invalid_inputs(c_ref, beta_v):
    with pytest.raises(ValueError):
        check_c_ref(c_ref, beta_v)


SCORES = torch.tensor([0.8, 0.3, 0.1, 0.6, 0.9])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])
FINISHED = torch.tensor([True, True, True, True, False])


def test_mse_hand_values_balanced_and_plain():
    # finished: N_c = 1 (row 0), N_i = 3 (rows 1-3); row 4 truncated
    # squared errors: 0.04, 0.09, 0.01, 0.36
    # w_c = 4 / (2 * 1) = 2, w_i = 4 / (2 * 3) = 2/3
    # balanced: (2 * 0.04 + 2/3 * 0.46) / 4
    loss, stats = self_reward_mse(SCORES, REWARDS, FINISHED, balanced=True)
    assert loss.item() == pytest.approx((0.08 + 0.46 * 2 / 3) / 4)
    assert stats["self_reward/mse"].item() == pytest.approx(loss.item())
    # plain: 0.5 / 4
    plain, _ = self_reward_mse(SCORES, REWARDS, FINISHED, balanced=False)
    assert plain.item() == pytest.approx(0.125)


def test_mse_stats_summarise_finished_scores_by_class():
    _, stats = self_reward_mse(SCORES, REWARDS, FINISHED)
    assert stats["self_reward/score_correct/mean"].item() == pytest.approx(0.8)  # row 4 excluded
    assert stats["self_reward/score_incorrect/mean"].item() == pytest.approx(1.0 / 3)
    assert stats["self_reward/score_incorrect/max"].item() == pytest.approx(0.6)


def test_mse_is_zero_when_score_equals_reward():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss, _ = self_reward_mse(rewards.clone(), rewards, torch.ones(4, dtype=torch.bool))
    assert loss.item() == 0.0


@pytest.mark.parametrize(("n_c", "n_i"), [(1, 7), (3, 5), (6, 2)])
def test_balanced_weights_give_each_class_equal_total_weight(n_c, n_i):
    rewards = torch.cat([torch.ones(n_c), torch.zeros(n_i)])
    finished = torch.ones(n_c + n_i, dtype=torch.bool)
    # unit error on one class only -> loss = (class total weight) / N = 1/2 for either class
    only_correct_wrong = torch.cat([torch.zeros(n_c), torch.zeros(n_i)])
    only_incorrect_wrong = torch.cat([torch.ones(n_c), torch.ones(n_i)])
    for scores in (only_correct_wrong, only_incorrect_wrong):
        loss, _ = self_reward_mse(scores, rewards, finished, balanced=True)
        assert loss.item() == pytest.approx(0.5)
    plain, _ = self_reward_mse(only_correct_wrong, rewards, finished, balanced=False)
    assert plain.item() == pytest.approx(n_c / (n_c + n_i))


def test_empty_class_gets_weight_zero():
    # all correct: N_i = 0 -> w_c = 2 / (2 * 2) = 0.5; loss = 0.5 * (0.25 + 0) / 2
    loss, stats = self_reward_mse(torch.tensor([0.5, 1.0]), torch.ones(2), torch.ones(2, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.0625)
    assert "self_reward/score_incorrect/mean" not in stats


def test_truncated_rows_do_not_change_the_mse():
    base, base_stats = self_reward_mse(SCORES[:4], REWARDS[:4], FINISHED[:4])
    scores = torch.cat([SCORES[:4], torch.tensor([5.0, -3.0, 0.2])])
    rewards = torch.cat([REWARDS[:4], torch.tensor([1.0, 0.0, 1.0])])
    finished = torch.cat([FINISHED[:4], torch.zeros(3, dtype=torch.bool)])
    loss, stats = self_reward_mse(scores, rewards, finished)
    assert loss.item() == pytest.approx(base.item())
    assert stats.keys() == base_stats.keys()
    for key, value in stats.items():
        assert value.item() == pytest.approx(base_stats[key].item()), key


def test_no_finished_row_gives_zero_loss_with_graph():
    scores = torch.tensor([0.3, 0.7], requires_grad=True)
    loss, _ = self_reward_mse(scores, torch.tensor([1.0, 0.0]), torch.zeros(2, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros(2))


def test_mse_gradient_hand_value():
    scores = SCORES.clone().requires_grad_(True)
    loss, _ = self_reward_mse(scores, REWARDS, FINISHED)
    loss.backward()
    # d/ds w (s - r)^2 / 4 = w (s - r) / 2 with w = (2, 2/3, 2/3, 2/3, 0)
    expected = torch.tensor([2 * -0.2, 2 / 3 * 0.3, 2 / 3 * 0.1, 2 / 3 * 0.6, 0.0]) / 2
    torch.testing.assert_close(scores.grad, expected)


@pytest.mark.parametrize("balanced", [True, False])
def test_micro_batches_with_step_counts_match_full_batch(balanced):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(10, generator=gen).requires_grad_(True)
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    finished = torch.tensor([True] * 7 + [False, True, True])
    full, _ = self_reward_mse(scores, rewards, finished, balanced)
    (full_grad,) = torch.autograd.grad(full, scores)
    n_c = (finished & (rewards > 0.5)).sum()
    n_i = (finished & (rewards < 0.5)).sum()
    split = sum(
        self_reward_mse(scores[sl], rewards[sl], finished[sl], balanced, n_c, n_i)[0]
        for sl in (slice(0, 2), slice(2, 7), slice(7, 10))
    )
    (split_grad,) = torch.autograd.grad(split, scores)
    torch.testing.assert_close(split, full)
    torch.testing.assert_close(split_grad, full_grad)


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

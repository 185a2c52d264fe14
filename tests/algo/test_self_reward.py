"""Tests for laser.algo.self_reward: score (E3), c_ref check (E2), MSE (E5) and the SFT loss."""

import math

import pytest
import torch

from laser.algo.self_reward import check_c_ref, self_reward_ce, self_reward_mse, self_reward_score


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


def test_sft_score_is_the_probability_of_z_and_ignores_c_ref():
    z_logp = torch.tensor([0.0, math.log(0.25), -30.0])
    scores = self_reward_score(z_logp, -12.0, 0.5, loss="sft")
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.25, math.exp(-30.0)]))
    with pytest.raises(ValueError, match="mse"):
        self_reward_score(z_logp, -12.0, 0.5, loss="bce")


# rows: correct, correct, incorrect, incorrect, truncated
CE_Z = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.1), -5.0, -1.0])
CE_ZI = torch.tensor([-9.0, -9.0, math.log(0.5), math.log(0.125), -1.0])
CE_REWARDS = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])
CE_FINISHED = torch.tensor([True, True, True, True, False])


def test_sft_loss_hand_values():
    # nll: -log pi(z_c) on correct rows (log 2, log 4), -log pi(z_i) on incorrect ones (log 2, log 8)
    # balanced: N_c = N_i = 2 -> w = 1 each; (log 2 + log 4 + log 2 + log 8) / 4 = 7 log 2 / 4
    loss, stats = self_reward_ce(CE_Z, CE_ZI, CE_REWARDS, CE_FINISHED)
    assert loss.item() == pytest.approx(7 * math.log(2) / 4)
    assert stats["self_reward/ce"].item() == pytest.approx(loss.item())
    # 3 correct : 1 incorrect -> w_c = 4/6, w_i = 4/2; rows 0, 1, 3 correct, row 2 incorrect
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
    loss, _ = self_reward_ce(CE_Z, CE_ZI, rewards, CE_FINISHED)
    # (4/6 (log 2 + log 4 + 5) + 2 log 2) / 4
    expected = (4 / 6 * (3 * math.log(2) + 5.0) + 2 * math.log(2)) / 4
    assert loss.item() == pytest.approx(expected)
    plain, _ = self_reward_ce(CE_Z, CE_ZI, rewards, CE_FINISHED, balanced=False)
    assert plain.item() == pytest.approx((3 * math.log(2) + 5.0 + math.log(2)) / 4)


def test_sft_loss_is_zero_when_each_verdict_is_certain():
    z = torch.tensor([0.0, -50.0])  # pi(z_c) = 1 on the correct row
    zi = torch.tensor([-50.0, 0.0])  # pi(z_i) = 1 on the incorrect row
    loss, _ = self_reward_ce(z, zi, torch.tensor([1.0, 0.0]), torch.ones(2, dtype=torch.bool))
    assert loss.item() == 0.0


def test_sft_loss_gradient_reaches_each_rows_own_verdict_token():
    z = CE_Z.clone().requires_grad_(True)
    zi = CE_ZI.clone().requires_grad_(True)
    loss, _ = self_reward_ce(z, zi, CE_REWARDS, CE_FINISHED)
    loss.backward()
    # d/d logp of -w * logp / 4 = -1/4 on the row's own token; nothing for the other token or the
    # truncated row
    torch.testing.assert_close(z.grad, torch.tensor([-0.25, -0.25, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(zi.grad, torch.tensor([0.0, 0.0, -0.25, -0.25, 0.0]))


def test_sft_loss_micro_batches_with_step_counts_match_full_batch():
    gen = torch.Generator().manual_seed(0)
    z = -torch.rand(10, generator=gen).mul(5).requires_grad_(True)
    zi = -torch.rand(10, generator=gen).mul(5).requires_grad_(True)
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    finished = torch.tensor([True] * 7 + [False, True, True])
    full, _ = self_reward_ce(z, zi, rewards, finished)
    n_c = (finished & (rewards > 0.5)).sum()
    n_i = (finished & (rewards < 0.5)).sum()
    split = sum(
        self_reward_ce(z[sl], zi[sl], rewards[sl], finished[sl], True, n_c, n_i)[0]
        for sl in (slice(0, 3), slice(3, 10))
    )
    torch.testing.assert_close(split, full)
    torch.testing.assert_close(torch.autograd.grad(split, z)[0], torch.autograd.grad(full, z)[0])

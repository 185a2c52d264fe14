"""Tests for laser.algo.advantages: GRPO advantage (E1) and mixed self-reward advantage (E6)."""

import math

import pytest
import torch

from laser.algo.advantages import (
    group_advantages,
    self_reward_advantages,
    self_reward_as_reward,
    varied_groups,
    zero_variance_frac,
)


def test_group_advantages_hand_values():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    adv = group_advantages(rewards, group_size=4, eps=0.0)
    # group 1: mean 0.25, deviations (0.75, -0.25 x3); unbiased var (0.5625 + 3 * 0.0625) / 3
    # = 0.25 -> std 0.5 -> (1.5, -0.5, -0.5, -0.5)
    # group 2: mean 0.5, deviations +-0.5; unbiased var 4 * 0.25 / 3 = 1/3 -> +-0.5 * sqrt(3)
    h = 0.5 * math.sqrt(3)
    expected = torch.tensor([1.5, -0.5, -0.5, -0.5, h, h, -h, -h])
    torch.testing.assert_close(adv, expected)


def test_group_advantages_eps_and_no_scaling():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # std 0.5 + eps 0.5 = 1 -> plain deviations
    torch.testing.assert_close(
        group_advantages(rewards, 4, eps=0.5), torch.tensor([0.75, -0.25, -0.25, -0.25])
    )
    torch.testing.assert_close(
        group_advantages(rewards, 4, scale="none"), torch.tensor([0.75, -0.25, -0.25, -0.25])
    )


def test_group_advantages_invariant_to_constant_shift():
    rewards = torch.rand(12, generator=torch.Generator().manual_seed(0))
    for scale in ("group_std", "none"):
        torch.testing.assert_close(
            group_advantages(rewards + 3.7, 4, scale=scale),
            group_advantages(rewards, 4, scale=scale),
        )


def test_zero_variance_groups_give_zero_advantage():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    adv = group_advantages(rewards, 3)
    assert torch.equal(adv[:6], torch.zeros(6))
    assert adv[6:].abs().min() > 0.5


@pytest.mark.parametrize(("n", "group_size"), [(6, 4), (4, 1)])
def test_group_advantages_rejects_bad_groups(n, group_size):
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(n), group_size)


# Group 1 scores clip to (1, 0.2, 0.8, 0): mean 0.5, deviations (0.5, -0.3, 0.3, -0.5),
# unbiased var (0.25 + 0.09 + 0.09 + 0.25) / 3 = 0.68 / 3 -> std sqrt(0.68 / 3) ~ 0.4761.
# Group 2 scores are constant -> std 0 -> filtered.
SCORES = torch.tensor([1.3, 0.2, 0.8, -0.5, 0.9, 0.9, 0.9, 0.9])
V_ADV = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.5, -0.5, 0.5, -0.5])
FINISHED = torch.ones(8, dtype=torch.bool)
A_S_GROUP1 = torch.tensor([0.5, -0.3, 0.3, -0.5]) / math.sqrt(0.68 / 3)


def test_self_reward_advantages_hand_values():
    adv, stats = self_reward_advantages(SCORES, V_ADV, FINISHED, 4, tau=0.1, filter_threshold=0.1)
    expected = torch.cat([0.9 * V_ADV[:4] + 0.1 * A_S_GROUP1, V_ADV[4:]])
    torch.testing.assert_close(adv, expected)
    assert stats["self_reward/filtered_frac"].item() == 0.5


def test_tau_one_gives_pure_self_reward_advantage_in_kept_groups():
    adv, _ = self_reward_advantages(SCORES, V_ADV, FINISHED, 4, tau=1.0, filter_threshold=0.1)
    torch.testing.assert_close(adv[:4], A_S_GROUP1)
    torch.testing.assert_close(adv[4:], V_ADV[4:])  # filtered group keeps A_v


def test_tau_zero_returns_exactly_the_verifier_advantage():
    v_adv = torch.randn(8, generator=torch.Generator().manual_seed(1))
    adv, _ = self_reward_advantages(SCORES, v_adv, FINISHED, 4, tau=0.0, filter_threshold=0.1)
    assert torch.equal(adv, v_adv)


def test_groups_at_or_below_threshold_fall_back_to_verifier_advantage():
    # group 1 std ~0.4761 <= 0.5 -> filtered too; everything falls back to A_v
    adv, stats = self_reward_advantages(SCORES, V_ADV, FINISHED, 4, tau=0.3, filter_threshold=0.5)
    torch.testing.assert_close(adv, V_ADV)
    assert stats["self_reward/filtered_frac"].item() == 1.0


def test_truncated_responses_count_as_zero_score():
    scores = torch.tensor([0.9, 0.9, 0.1, 0.3])
    finished = torch.tensor([True, False, True, True])
    v_adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    got, _ = self_reward_advantages(scores, v_adv, finished, 4, tau=0.5, filter_threshold=0.0)
    same, _ = self_reward_advantages(
        torch.tensor([0.9, 0.0, 0.1, 0.3]), v_adv, torch.ones(4, dtype=torch.bool), 4, 0.5, 0.0
    )
    torch.testing.assert_close(got, same)
    ignored, _ = self_reward_advantages(scores, v_adv, torch.ones(4, dtype=torch.bool), 4, 0.5, 0.0)
    assert not torch.allclose(got, ignored)


def test_self_reward_advantages_carry_no_gradient():
    scores = SCORES.clone().requires_grad_(True)
    adv, _ = self_reward_advantages(scores, V_ADV, FINISHED, 4, tau=0.1, filter_threshold=0.1)
    assert not adv.requires_grad


def test_self_reward_advantages_reject_bad_groups():
    with pytest.raises(ValueError, match="group_size"):
        self_reward_advantages(SCORES, V_ADV, FINISHED, 3, tau=0.1, filter_threshold=0.1)


def test_self_reward_as_reward_clips_and_zeroes_truncated_rows():
    scores = torch.tensor([1.7, 0.4, -0.3, 0.9], requires_grad=True)
    finished = torch.tensor([True, True, True, False])
    rewards = self_reward_as_reward(scores, finished)
    torch.testing.assert_close(rewards, torch.tensor([1.0, 0.4, 0.0, 0.0]))
    assert not rewards.requires_grad


def test_self_reward_as_the_reward_gives_the_grpo_advantage_of_the_clipped_score():
    # group (1, 0.4, 0, 0): mean 0.35, centred (0.65, 0.05, -0.35, -0.35)
    scores = torch.tensor([1.7, 0.4, -0.3, 0.9])
    finished = torch.tensor([True, True, True, False])
    adv = group_advantages(self_reward_as_reward(scores, finished), 4, scale="none")
    torch.testing.assert_close(adv, torch.tensor([0.65, 0.05, -0.35, -0.35]))


def test_zero_variance_frac_counts_groups_with_one_reward_value():
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # groups of 2: 3 of 4 uniform
    assert zero_variance_frac(rewards, 2).item() == pytest.approx(0.75)
    assert zero_variance_frac(rewards, 4).item() == 0.0
    assert zero_variance_frac(torch.ones(6), 3).item() == 1.0
    with pytest.raises(ValueError, match="multiple of group_size"):
        zero_variance_frac(rewards, 3)


def test_batch_std_scaling_hand_values():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    # group means 0.25 and 0.5; the batch's 3 ones of 8 have mean 0.375 and unbiased variance
    # (3 * 0.625^2 + 5 * 0.375^2) / 7 = 1.875 / 7 = 15 / 56
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5])
    adv = group_advantages(rewards, 4, scale="batch_std", eps=0.0)
    torch.testing.assert_close(adv, centred / math.sqrt(15 / 56))
    # a data-parallel rank passes the whole step's std
    given = group_advantages(rewards, 4, scale="batch_std", eps=0.0, batch_std=torch.tensor(0.5))
    torch.testing.assert_close(given, 2 * centred)


def test_batch_std_scaling_keeps_zero_variance_groups_at_zero():
    adv = group_advantages(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2, scale="batch_std")
    assert torch.equal(adv[:2], torch.zeros(2)) and adv[2:].abs().min() > 0.5


def test_dr_grpo_advantage_is_the_centred_reward():
    # Dr. GRPO drops the std: a group with one success in four gets (0.75, -0.25, -0.25, -0.25),
    # whatever the other groups hold
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]), 4, scale="none")
    torch.testing.assert_close(adv, torch.tensor([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75]))


def test_varied_groups_marks_groups_whose_rewards_differ():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert varied_groups(rewards, 4).tolist() == [True, False, False]
    assert zero_variance_frac(rewards, 4).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="multiple of group_size"):
        varied_groups(rewards, 5)

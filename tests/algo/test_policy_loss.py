"""Tests for laser.algo.policy_loss.clipped_policy_loss (E1, verl's PPO-clip with dual clip)."""

import math

import pytest
import torch

from laser.algo.policy_loss import clipped_policy_loss

MODES = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]


def _logs(ratios):
    """(N, T) log-prob pair whose ratio exp(logp - old_logp) equals ``ratios``."""
    old = torch.full((len(ratios), len(ratios[0])), -2.0)
    logp = old + torch.log(torch.tensor(ratios))
    return logp.requires_grad_(True), old


def test_hand_values_symmetric_clip():
    logp, old = _logs([[1.5, 0.9], [0.5, 1.1]])
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss, stats = clipped_policy_loss(logp, old, adv, mask, dual_clip=None)
    # A=+1: ratio 1.5 -> max(-1.5, -1.2) = -1.2 (clipped); ratio 0.9 -> -0.9 (inside the range)
    # A=-1: ratio 0.5 -> max(0.5, 0.8) = 0.8 (clipped); ratio 1.1 -> 1.1
    # token mean (-1.2 - 0.9 + 0.8 + 1.1) / 4 = -0.05
    assert loss.item() == pytest.approx(-0.05)
    assert stats["policy/loss"].item() == pytest.approx(-0.05)
    assert stats["policy/clipfrac"].item() == pytest.approx(0.5)
    assert stats["policy/dual_clipfrac"].item() == 0.0
    # approx_kl = mean of k3 = r - 1 - log r over the four ratios
    k3 = [r - 1 - math.log(r) for r in (1.5, 0.9, 0.5, 1.1)]
    assert stats["policy/approx_kl"].item() == pytest.approx(sum(k3) / 4, rel=1e-5)
    loss.backward()
    # d/dlogp(-A * r) = -A * r on unclipped tokens, 0 on clipped ones; divided by 4 tokens
    expected = torch.tensor([[0.0, -0.9 / 4], [0.0, 1.1 / 4]])
    torch.testing.assert_close(logp.grad, expected)


def test_ratio_one_gives_minus_token_mean_advantage():
    logp = torch.zeros(2, 3)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    loss, stats = clipped_policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx((-2.0 * 3 + 1.0) / 4)  # 4 valid tokens
    assert stats["policy/clipfrac"].item() == 0.0
    assert stats["policy/approx_kl"].item() == 0.0


def test_dual_clip_caps_negative_advantage_loss():
    logp, old = _logs([[5.0, 2.0]])
    adv = torch.tensor([-1.0])
    mask = torch.ones(1, 2, dtype=torch.bool)
    # ratio 5: max(5, 1.2) = 5 -> capped at -A * 3 = 3; ratio 2: max(2, 1.2) = 2 < 3, not capped
    loss, stats = clipped_policy_loss(logp, old, adv, mask, dual_clip=3.0)
    assert loss.item() == pytest.approx((3.0 + 2.0) / 2)
    assert stats["policy/dual_clipfrac"].item() == pytest.approx(0.5)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 2.0 / 2]]))  # capped token: no grad
    no_dual, stats_off = clipped_policy_loss(logp, old, adv, mask, dual_clip=None)
    assert no_dual.item() == pytest.approx((5.0 + 2.0) / 2)
    assert stats_off["policy/dual_clipfrac"].item() == 0.0


def test_dual_clip_never_touches_positive_advantages():
    logp, old = _logs([[5.0]])
    loss, stats = clipped_policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1, dtype=bool))
    assert loss.item() == pytest.approx(-1.2)  # max(-5, -1.2)
    assert stats["policy/dual_clipfrac"].item() == 0.0


@pytest.mark.parametrize("dual_clip", [1.0, 0.5])
def test_dual_clip_must_exceed_one(dual_clip):
    logp = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="dual_clip"):
        clipped_policy_loss(logp, logp, torch.ones(1), torch.ones(1, 1), dual_clip=dual_clip)


def test_asymmetric_clip_uses_separate_low_and_high_ranges():
    logp, old = _logs([[1.25], [0.75]])
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 1, dtype=torch.bool)
    # clip_high 0.28: ratio 1.25 is inside [0.8, 1.28] -> -1.25; ratio 0.75 -> max(0.75, 0.8) = 0.8
    loss, stats = clipped_policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx((-1.25 + 0.8) / 2)
    assert stats["policy/clipfrac"].item() == pytest.approx(0.5)
    # symmetric 0.2: ratio 1.25 is clipped to 1.2 as well
    loss_sym, stats_sym = clipped_policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert loss_sym.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert stats_sym["policy/clipfrac"].item() == pytest.approx(1.0)
    # clip_low 0.3: ratio 0.75 lies inside [0.7, 1.28] -> 0.75
    loss_low, _ = clipped_policy_loss(logp, old, adv, mask, clip_low=0.3, clip_high=0.28)
    assert loss_low.item() == pytest.approx((-1.25 + 0.75) / 2)


def _random_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(6, 5, generator=gen) * 3
    logp = (old + 0.4 * torch.randn(6, 5, generator=gen)).requires_grad_(True)
    adv = torch.randn(6, generator=gen)
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 3, 1, 4, 5])[:, None]  # (6, 5)
    return logp, old, adv, mask


@pytest.mark.parametrize("mode", MODES)
def test_padding_columns_do_not_change_loss(mode):
    logp, old, adv, mask = _random_batch()
    loss, _ = clipped_policy_loss(logp, old, adv, mask, agg=mode)
    pad_logp = torch.cat([logp, torch.full((6, 3), -50.0)], dim=1)
    pad_old = torch.cat([old, torch.zeros(6, 3)], dim=1)
    pad_mask = torch.cat([mask, torch.zeros(6, 3, dtype=torch.bool)], dim=1)
    padded, _ = clipped_policy_loss(pad_logp, pad_old, adv, pad_mask, agg=mode)
    torch.testing.assert_close(padded, loss)


@pytest.mark.parametrize("mode", MODES)
def test_micro_batches_give_same_loss_and_gradient(mode):
    logp, old, adv, mask = _random_batch(1)
    full, _ = clipped_policy_loss(logp, old, adv, mask, agg=mode)
    (full_grad,) = torch.autograd.grad(full, logp)
    totals = {"num_tokens": mask.sum(), "num_seqs": mask.any(-1).sum()}
    split = sum(
        clipped_policy_loss(logp[sl], old[sl], adv[sl], mask[sl], agg=mode, **totals)[0]
        for sl in (slice(0, 1), slice(1, 4), slice(4, 6))
    )
    (split_grad,) = torch.autograd.grad(split, logp)
    torch.testing.assert_close(split, full)
    torch.testing.assert_close(split_grad, full_grad)


def test_dapo_token_level_loss_weights_long_responses_by_their_tokens():
    # DAPO section 3.3: a 1-token response with A = +1 and a 3-token one with A = -1, ratio 1
    logp = torch.zeros(2, 3)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[True, False, False], [True, True, True]])
    token_level, _ = clipped_policy_loss(logp, logp, adv, mask, agg="token_mean")
    assert token_level.item() == pytest.approx((-1.0 + 3 * 1.0) / 4)  # every token counts once
    per_sequence, _ = clipped_policy_loss(logp, logp, adv, mask, agg="seq_mean_token_mean")
    assert per_sequence.item() == pytest.approx((-1.0 + 1.0) / 2)  # GRPO's 1/|y_i|: responses alike

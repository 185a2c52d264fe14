"""Tests for laser.algo.importance: GSPO's sequence-level ratio and truncated importance sampling."""

import math

import pytest
import torch

from laser.algo.importance import importance_log_ratio, truncated_is_weights
from laser.algo.policy_loss import clipped_policy_loss


def _logs(ratios):
    """(N, T) log-prob pair whose per-token ratio exp(logp - old_logp) equals ``ratios``."""
    old = torch.full((len(ratios), len(ratios[0])), -2.0)
    logp = old + torch.log(torch.tensor(ratios))
    return logp.requires_grad_(True), old


def test_sequence_log_ratio_is_the_masked_mean_on_every_token():
    log_ratio = torch.tensor([[0.1, 0.3, 9.0], [0.2, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    got = importance_log_ratio(log_ratio, mask, "sequence")
    torch.testing.assert_close(got, torch.full((2, 3), 0.2))
    assert importance_log_ratio(log_ratio, mask, "token") is log_ratio
    with pytest.raises(ValueError, match="level"):
        importance_log_ratio(log_ratio, mask, "group")


def test_gspo_clips_whole_sequences_not_tokens():
    # one response, A = +1, token ratios 2 and 0.5: the sequence ratio is sqrt(2 * 0.5) = 1
    logp, old = _logs([[2.0, 0.5]])
    adv, mask = torch.tensor([1.0]), torch.ones(1, 2, dtype=torch.bool)
    token, token_stats = clipped_policy_loss(logp, old, adv, mask, dual_clip=None)
    # per token: max(-2, -1.2) = -1.2 (clipped) and -0.5 -> token mean -0.85
    assert token.item() == pytest.approx(-0.85)
    assert token_stats["policy/clipfrac"].item() == pytest.approx(0.5)
    seq, seq_stats = clipped_policy_loss(
        logp, old, adv, mask, dual_clip=None, agg="seq_mean_token_mean", ratio_level="sequence"
    )
    assert seq.item() == pytest.approx(-1.0)  # s = 1 is inside [0.8, 1.2]
    assert seq_stats["policy/clipfrac"].item() == 0.0
    (grad,) = torch.autograd.grad(seq, logp)
    # d(-A s)/d logp_t = -A s / |y| = -0.5 on each token
    torch.testing.assert_close(grad, torch.tensor([[-0.5, -0.5]]))


def test_gspo_clip_range_drops_the_gradient_of_a_drifted_sequence():
    # GSPO's ranges 3e-4 / 4e-4 (section 5.1): s = exp(0.001) ~ 1.001 > 1.0004 is clipped for A > 0
    logp, old = _logs([[math.exp(0.001)] * 3])
    loss, stats = clipped_policy_loss(
        logp, old, torch.tensor([1.0]), torch.ones(1, 3, dtype=torch.bool), clip_low=3e-4,
        clip_high=4e-4, dual_clip=None, agg="seq_mean_token_mean", ratio_level="sequence",
    )  # fmt: skip
    assert loss.item() == pytest.approx(-1.0004)
    assert stats["policy/clipfrac"].item() == 1.0
    (grad,) = torch.autograd.grad(loss, logp)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_truncated_is_weights_hand_values():
    # pi_old / pi_rollout = 0.5, 1, 3 (capped at 2), and a padded token
    rollout = torch.full((1, 4), -1.0)
    old = rollout + torch.log(torch.tensor([[0.5, 1.0, 3.0, 7.0]]))
    mask = torch.tensor([[True, True, True, False]])
    weights, stats = truncated_is_weights(old, rollout, mask, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 1.0, 2.0, 0.0]]))
    assert stats["rollout_is/mean"].item() == pytest.approx(3.5 / 3)
    assert stats["rollout_is/truncated_frac"].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="cap"):
        truncated_is_weights(old, rollout, mask, cap=0.5)


def test_is_weights_scale_each_tokens_policy_loss():
    logp = torch.zeros(1, 3, requires_grad=True)
    weights = torch.tensor([[0.5, 1.0, 2.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, _ = clipped_policy_loss(logp, logp.detach(), torch.tensor([1.0]), mask, is_weights=weights)
    # ratio 1, A = 1: -(0.5 + 1 + 2) / 3 tokens
    assert loss.item() == pytest.approx(-3.5 / 3)
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, -weights / 3)

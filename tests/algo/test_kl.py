"""Tests for laser.algo.kl: per-token KL estimators and the KL penalty."""

import math

import pytest
import torch

from laser.algo.kl import kl_estimate, kl_penalty

LOGP = torch.tensor([[-1.0, -2.0, -0.3]])
REF = torch.tensor([[-1.5, -1.0, -9.0]])
MASK = torch.tensor([[True, True, False]])


def test_k1_and_k3_hand_values():
    # valid tokens: d = ref - logp = (-0.5, 1.0)
    k1, stats1 = kl_penalty(LOGP, REF, MASK, estimator="k1")
    assert k1.item() == pytest.approx((0.5 - 1.0) / 2)  # k1 = logp - ref = (0.5, -1.0)
    k3, stats3 = kl_penalty(LOGP, REF, MASK, estimator="k3")
    # k3 = exp(d) - d - 1 = (exp(-0.5) - 0.5, exp(1) - 2)
    expected = (math.exp(-0.5) - 0.5 + math.e - 2.0) / 2
    assert k3.item() == pytest.approx(expected)
    assert stats3["kl/mean"].item() == pytest.approx(expected)
    assert stats1["kl/mean"].item() == pytest.approx(-0.25)


def test_kl_is_zero_for_identical_policies_and_k3_is_nonnegative():
    logp = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    ref = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(4, 6, dtype=torch.bool)
    assert kl_penalty(logp, logp, mask)[0].item() == 0.0
    assert (kl_estimate(ref - logp, "k3") >= 0).all()


def test_estimators_are_unbiased_for_kl_of_policy_to_reference():
    # Tokens sampled from pi_theta (q): E_q[k1] = E_q[k3] = KL(q || p_ref).
    gen = torch.Generator().manual_seed(0)
    log_q = torch.log_softmax(torch.randn(5, generator=gen), -1)
    log_p = torch.log_softmax(torch.randn(5, generator=gen), -1)
    exact = (log_q.exp() * (log_q - log_p)).sum()
    tokens = torch.multinomial(log_q.exp(), 200_000, replacement=True, generator=gen)
    logp, ref = log_q[tokens][None], log_p[tokens][None]  # (1, S)
    mask = torch.ones_like(logp, dtype=torch.bool)
    for estimator in ("k1", "k3"):
        est, _ = kl_penalty(logp, ref, mask, estimator=estimator)
        assert est.item() == pytest.approx(exact.item(), abs=0.02)


def test_kl_gradient_and_unknown_estimator():
    logp = LOGP.clone().requires_grad_(True)
    loss, _ = kl_penalty(logp, REF, MASK, estimator="k3")
    loss.backward()
    # d/dlogp [exp(ref - logp) - (ref - logp) - 1] / 2 = (1 - exp(ref - logp)) / 2; padding 0
    expected = torch.tensor([[(1 - math.exp(-0.5)) / 2, (1 - math.e) / 2, 0.0]])
    torch.testing.assert_close(logp.grad, expected)
    with pytest.raises(ValueError, match="k2"):
        kl_estimate(torch.zeros(1), "k2")

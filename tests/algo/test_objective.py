"""Tests for laser.algo.objective.laser_objective (E4/E5 total loss)."""

import pytest
import torch

from laser.algo.kl import kl_penalty
from laser.algo.objective import OBJECTIVE_STATS, laser_objective
from laser.algo.policy_loss import clipped_policy_loss
from laser.algo.self_reward import self_reward_mse, self_reward_score
from laser.algo.stats import MicroBatchStats, Reduction


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(4, 5, generator=gen) * 3
    return {
        "logp": (old + 0.3 * torch.randn(4, 5, generator=gen)).requires_grad_(True),
        "old_logp": old,
        "mask": torch.arange(5)[None, :] < torch.tensor([5, 3, 1, 4])[:, None],
        "adv": torch.tensor([1.0, -0.5, 0.3, -1.2]),
        "z_logp": torch.tensor([-14.0, -22.0, -18.0, -20.0], requires_grad=True),
        "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0]),
        "finished": torch.tensor([True, True, True, False]),
        "c_ref": -23.0,
        "beta_v": 0.1,
    }


def _pg(x):
    return clipped_policy_loss(x["logp"], x["old_logp"], x["adv"], x["mask"])[0]


def test_alpha_zero_is_exactly_the_grpo_loss_and_still_logs_mse():
    x = _inputs()
    loss, stats = laser_objective(**x, alpha=0.0)
    assert torch.equal(loss, _pg(x))
    scores = self_reward_score(x["z_logp"], -23.0, 0.1)  # (0.9, 0.1, 0.5, 0.3)
    expected_mse, _ = self_reward_mse(scores, x["rewards"], x["finished"])
    assert stats["self_reward/mse"].item() == pytest.approx(expected_mse.item())
    assert stats["loss/total"].item() == loss.item()
    loss.backward()
    assert x["z_logp"].grad is None  # the MSE was computed without a graph


def test_alpha_adds_the_weighted_mse_and_trains_only_z_through_it():
    x = _inputs()
    loss, stats = laser_objective(**x, alpha=0.1)
    # finished: N_c = 2 (scores 0.9, 0.5), N_i = 1 (score 0.1) -> w_c = 3/4, w_i = 3/2
    # mse = (0.75 * (0.01 + 0.25) + 1.5 * 0.01) / 3 = 0.21 / 3 = 0.07
    assert stats["self_reward/mse"].item() == pytest.approx(0.07)
    assert loss.item() == pytest.approx(_pg(x).item() + 0.1 * 0.07)
    loss.backward()
    # d/dz alpha * w (beta (z - c) - r)^2 / 3 = alpha * 2 w (s - r) * beta / 3
    expected = torch.tensor([0.75 * -0.1, 1.5 * 0.1, 0.75 * -0.5, 0.0]) * 2 * 0.1 * 0.1 / 3
    torch.testing.assert_close(x["z_logp"].grad, expected)
    (pg_grad,) = torch.autograd.grad(_pg(x), x["logp"])
    torch.testing.assert_close(x["logp"].grad, pg_grad)  # z never enters the PG term


def test_kl_requires_ref_logp():
    with pytest.raises(ValueError, match="kl_beta"):
        laser_objective(**_inputs(), alpha=0.1, kl_beta=0.01)


def test_kl_term_is_added_with_its_weight():
    x = _inputs()
    ref = x["old_logp"] - 0.2
    loss, stats = laser_objective(**x, alpha=0.0, ref_logp=ref, kl_beta=0.5, kl_estimator="k1")
    kl, _ = kl_penalty(x["logp"], ref, x["mask"], estimator="k1")
    torch.testing.assert_close(loss, _pg(x) + 0.5 * kl)
    assert stats["kl/mean"].item() == pytest.approx(kl.item())


def test_kl_stats_are_reported_without_changing_the_loss_when_kl_beta_is_zero():
    x = _inputs()
    loss, stats = laser_objective(**x, alpha=0.0, ref_logp=x["old_logp"] - 0.2)
    assert torch.equal(loss, _pg(x))
    assert stats["kl/mean"].item() > 0
    assert "kl/mean" not in laser_objective(**x, alpha=0.0)[1]


def test_outer_no_grad_is_respected():
    with torch.no_grad():
        loss, _ = laser_objective(**_inputs(), alpha=0.1)
    assert not loss.requires_grad


def test_negative_alpha_is_rejected():
    with pytest.raises(ValueError, match="alpha"):
        laser_objective(**_inputs(), alpha=-0.1)


def _sft_inputs():
    x = _inputs()
    x["incorrect_logp"] = torch.tensor([-3.0, -0.5, -2.0, -1.0], requires_grad=True)
    return x


def test_sft_adds_the_weighted_cross_entropy_of_the_verdict_tokens():
    x = _sft_inputs()
    loss, stats = laser_objective(**x, alpha=0.5, verify_loss="sft")
    # finished: correct rows 0, 2 (nll 14, 18), incorrect row 1 (nll 0.5); w_c = 3/4, w_i = 3/2
    # ce = (0.75 * 32 + 1.5 * 0.5) / 3 = 24.75 / 3 = 8.25
    assert stats["self_reward/ce"].item() == pytest.approx(8.25)
    assert "self_reward/mse" not in stats
    assert loss.item() == pytest.approx(_pg(x).item() + 0.5 * 8.25)
    loss.backward()
    # d/dz of -alpha * w * z / 3 on each row's own verdict token
    torch.testing.assert_close(x["z_logp"].grad, torch.tensor([-0.125, 0.0, -0.125, 0.0]))
    torch.testing.assert_close(x["incorrect_logp"].grad, torch.tensor([0.0, -0.25, 0.0, 0.0]))


def test_sft_with_alpha_zero_is_exactly_the_grpo_loss():
    x = _sft_inputs()
    loss, stats = laser_objective(**x, alpha=0.0, verify_loss="sft")
    assert torch.equal(loss, _pg(x)) and "self_reward/ce" in stats


def test_sft_needs_the_incorrect_token_logprob():
    with pytest.raises(ValueError, match="incorrect_logp"):
        laser_objective(**_inputs(), alpha=0.1, verify_loss="sft")


def test_rollout_is_weights_of_one_leave_the_loss_unchanged():
    x = _inputs()
    plain, _ = laser_objective(**x, alpha=0.1)
    same, stats = laser_objective(**x, alpha=0.1, rollout_logp=x["old_logp"], rollout_is_cap=2.0)
    assert same.item() == pytest.approx(plain.item())
    assert stats["rollout_is/mean"].item() == pytest.approx(1.0)


def test_rollout_is_cap_needs_the_rollout_log_probs():
    with pytest.raises(ValueError, match="rollout_logp"):
        laser_objective(**_inputs(), alpha=0.1, rollout_is_cap=2.0)


def test_gspo_and_dr_grpo_options_reach_the_policy_term():
    x = _inputs()
    options = {"agg": "seq_mean_token_sum_norm", "norm_length": 8}
    loss, _ = laser_objective(**x, alpha=0.0, ratio_level="sequence", **options)
    expected, _ = clipped_policy_loss(
        x["logp"], x["old_logp"], x["adv"], x["mask"], ratio_level="sequence", **options
    )
    assert torch.equal(loss, expected)


@pytest.mark.parametrize("verify_loss", ["mse", "sft"])
def test_every_stat_of_the_objective_declares_its_reduction_over_micro_batches(verify_loss):
    x = _sft_inputs()
    x["rewards"] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # both classes: every per-class summary
    _, stats = laser_objective(
        **x, alpha=0.1, verify_loss=verify_loss, kl_beta=0.1, ref_logp=x["old_logp"] - 0.1,
        rollout_logp=x["old_logp"], rollout_is_cap=2.0,
    )  # fmt: skip
    assert set(stats) <= set(OBJECTIVE_STATS), set(stats) - set(OBJECTIVE_STATS)
    assert OBJECTIVE_STATS["loss/total"] is Reduction.SHARE
    assert OBJECTIVE_STATS["policy/clipfrac"] is Reduction.TOKEN_MEAN


def test_the_step_value_of_each_stat_does_not_depend_on_the_micro_batches():
    """Two micro-batches with the step's counts give the losses of the whole step (shares summed)
    and its token means (weighted by their tokens), whatever the split."""
    x = _sft_inputs()
    counts = {"num_tokens": x["mask"].sum(), "num_seqs": 4.0, "num_correct": 2.0, "num_incorrect": 1.0}
    options = {"alpha": 0.1, "verify_loss": "sft", "kl_beta": 0.1, "ref_logp": x["old_logp"] - 0.1}
    rows = ("logp", "old_logp", "mask", "adv", "z_logp", "rewards", "finished", "incorrect_logp", "ref_logp")
    inputs = {**x, "ref_logp": options.pop("ref_logp")}
    _, whole = laser_objective(**inputs, **options, **counts)
    sums = MicroBatchStats(OBJECTIVE_STATS)
    for part in (slice(0, 1), slice(1, 4)):
        mb = {k: v[part] if k in rows else v for k, v in inputs.items()}
        _, stats = laser_objective(**mb, **options, **counts)
        sums.add(stats, token_share=x["mask"][part].sum() / counts["num_tokens"])
    reduced = sums.result()
    for name in ("loss/total", "policy/loss", "self_reward/ce", "policy/clipfrac", "kl/mean"):
        assert reduced[name].item() == pytest.approx(whole[name].item(), rel=1e-5), name
    assert "self_reward/score_correct/mean" not in reduced  # redone over the step's rows

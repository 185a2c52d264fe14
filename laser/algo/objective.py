"""The full LaSeR training loss (E4/E5): L_PG + kl_beta * L_KL + alpha * l_SR, where l_SR is the
class-balanced MSE (E5) or the SFT cross-entropy it is compared with (paper section 5). L_PG is the
policy-gradient term of the baseline LaSeR sits on (GRPO, Dr. GRPO, DAPO, GSPO)."""

from __future__ import annotations

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.importance import IS_STATS, RatioLevel, truncated_is_weights
from laser.algo.kl import KL_STATS, KLEstimator, kl_penalty
from laser.algo.masked import AggMode
from laser.algo.policy_loss import POLICY_LOSS_STATS, clipped_policy_loss
from laser.algo.self_reward import (
    CE_STATS,
    MSE_STATS,
    VerifyLoss,
    self_reward_ce,
    self_reward_mse,
    self_reward_score,
)
from laser.algo.stats import Reduction

# every stat `laser_objective` gives, and how a step's micro-batches combine them
OBJECTIVE_STATS = {
    **POLICY_LOSS_STATS,
    **IS_STATS,
    **KL_STATS,
    **MSE_STATS,
    **CE_STATS,
    names.LOSS_TOTAL: Reduction.SHARE,
}


def _kl_term(
    logp: Tensor,
    ref_logp: Tensor | None,
    mask: Tensor,
    kl_beta: float,
    estimator: KLEstimator,
    agg: AggMode,
    num_tokens: float | Tensor | None,
    num_seqs: float | Tensor | None,
    norm_length: float | None,
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """KL loss (None when not available) and its stats; grad only when kl_beta > 0."""
    if kl_beta < 0:
        raise ValueError(f"kl_beta must be >= 0, got kl_beta={kl_beta}")
    if kl_beta > 0 and ref_logp is None:
        raise ValueError(f"kl_beta={kl_beta} > 0 needs ref_logp (reference log-probs)")
    if ref_logp is None:
        return None, {}
    with torch.set_grad_enabled(torch.is_grad_enabled() and kl_beta > 0):
        return kl_penalty(logp, ref_logp, mask, estimator, agg, num_tokens, num_seqs, norm_length)


def _is_weights(
    old_logp: Tensor, rollout_logp: Tensor | None, mask: Tensor, cap: float | None
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """Truncated importance weights against the rollout (None when ``cap`` is None) and stats."""
    if cap is None:
        return None, {}
    if rollout_logp is None:
        raise ValueError(f"rollout_is_cap={cap} needs rollout_logp, the log-probs the rollout sampled with")
    return truncated_is_weights(old_logp, rollout_logp, mask, cap)


def _verification_term(
    loss: VerifyLoss,
    z_logp: Tensor,
    incorrect_logp: Tensor | None,
    c_ref: float | Tensor,
    beta_v: float,
    rewards: Tensor,
    finished: Tensor,
    balanced: bool,
    num_correct: float | Tensor | None,
    num_incorrect: float | Tensor | None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """l_SR and its stats: the MSE of the score (E5) or the verdict tokens' cross-entropy."""
    counts = (balanced, num_correct, num_incorrect)
    match loss:
        case "mse":
            scores = self_reward_score(z_logp, c_ref, beta_v)  # (N,)
            return self_reward_mse(scores, rewards, finished, *counts)
        case "sft":
            if incorrect_logp is None:
                raise ValueError("loss='sft' needs incorrect_logp, log pi(z_i | x, y)")
            return self_reward_ce(z_logp, incorrect_logp, rewards, finished, *counts)
        case _:
            raise ValueError(f"unknown verification loss {loss!r}; use 'mse' or 'sft'")


def laser_objective(
    *,
    logp: Tensor,
    old_logp: Tensor,
    mask: Tensor,
    adv: Tensor,
    z_logp: Tensor,
    rewards: Tensor,
    finished: Tensor,
    c_ref: float | Tensor,
    beta_v: float,
    alpha: float,
    balanced: bool = True,
    verify_loss: VerifyLoss = "mse",
    incorrect_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    kl_beta: float = 0.0,
    kl_estimator: KLEstimator = "k3",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = 3.0,
    agg: AggMode = "token_mean",
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
    num_correct: float | Tensor | None = None,
    num_incorrect: float | Tensor | None = None,
    ratio_level: RatioLevel = "token",
    rollout_logp: Tensor | None = None,
    rollout_is_cap: float | None = None,
    norm_length: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """LaSeR loss (E4 with E5): L_PG + kl_beta * L_KL + alpha * l_SR.

    The self-reward token z_c is not a response token and never enters the PG term. The
    verification stats are always reported (under no_grad when ``alpha == 0``, so GRPO runs log
    the untrained score); with ``alpha == 0`` and ``kl_beta == 0`` the loss is exactly
    :func:`clipped_policy_loss`'s (nothing is added).

    Args:
        logp: (N, T) log pi_theta of the response tokens (with grad).
        old_logp: (N, T) log pi_old of the response tokens.
        mask: (N, T) bool, true on the response tokens of the policy-gradient and KL terms (all
            response tokens, or fewer: truncated responses or MSE-only rows masked out).
        adv: (N,) advantages (E1 or the mixed E6), broadcast over tokens.
        z_logp: (N,) log pi_theta(z_c | x, y) at the EOS position, temperature 1 (with grad).
        rewards: (N,) verifier rewards in {0, 1}.
        finished: (N,) bool, true where the response ended with EOS.
        c_ref: Reference log-prob of z_c, constant or (N,) (E3).
        beta_v: Verification KL weight (E3).
        alpha: Weight of the verification loss l_SR, >= 0.
        balanced: Class-balanced weights of l_SR (E5).
        verify_loss: l_SR: ``"mse"``, the MSE of the score (E5), or ``"sft"``, the cross-entropy of
            the verdict tokens (:func:`~laser.algo.self_reward.self_reward_ce`).
        incorrect_logp: (N,) log pi_theta(z_i | x, y) at the EOS position (with grad); needed
            when ``verify_loss == "sft"``.
        ref_logp: (N, T) log pi_ref of the response tokens; needed when ``kl_beta > 0``.
        kl_beta: KL loss weight beta (E1), >= 0.
        kl_estimator: ``"k1"`` or ``"k3"``.
        clip_low: PPO lower clip range.
        clip_high: PPO upper clip range.
        dual_clip: Dual-clip constant (> 1) or ``None``.
        agg: Token aggregation of the PG and KL terms.
        num_tokens: Step-level valid-token count for micro-batching (default: local).
        num_seqs: Step-level sequence count for micro-batching (default: local).
        num_correct: Step-level N_c for the MSE (default: local).
        num_incorrect: Step-level N_i for the MSE (default: local).
        ratio_level: ``"token"`` (PPO/GRPO) or ``"sequence"`` (GSPO) importance ratio.
        rollout_logp: (N, T) log-probs the rollout sampled its tokens with; needed when
            ``rollout_is_cap`` is set.
        rollout_is_cap: Cap of the truncated importance weights pi_old / pi_rollout
            (:func:`~laser.algo.importance.truncated_is_weights`); ``None`` uses none.
        norm_length: The constant of ``agg="seq_mean_token_sum_norm"`` (Dr. GRPO).

    Returns:
        ``(loss, stats)``: scalar loss and the stats of every term plus ``loss/total``, each
        declared in :data:`OBJECTIVE_STATS` with its reduction over micro-batches.

    Raises:
        ValueError: If ``alpha < 0``, ``kl_beta < 0``, ``kl_beta > 0`` without ``ref_logp``,
            ``verify_loss == "sft"`` without ``incorrect_logp``, or ``rollout_is_cap`` without
            ``rollout_logp``.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got alpha={alpha}")
    is_weights, is_stats = _is_weights(old_logp, rollout_logp, mask, rollout_is_cap)
    loss, stats = clipped_policy_loss(
        logp, old_logp, adv, mask, clip_low, clip_high, dual_clip, agg, num_tokens, num_seqs,
        ratio_level=ratio_level, is_weights=is_weights, norm_length=norm_length,
    )  # fmt: skip
    kl_loss, kl_stats = _kl_term(
        logp, ref_logp, mask, kl_beta, kl_estimator, agg, num_tokens, num_seqs, norm_length
    )
    with torch.set_grad_enabled(torch.is_grad_enabled() and alpha > 0):
        sr_loss, sr_stats = _verification_term(
            verify_loss, z_logp, incorrect_logp, c_ref, beta_v, rewards, finished, balanced,
            num_correct, num_incorrect,
        )  # fmt: skip
    if kl_beta > 0:
        loss = loss + kl_beta * kl_loss
    if alpha > 0:
        loss = loss + alpha * sr_loss
    stats = {**stats, **is_stats, **kl_stats, **sr_stats, names.LOSS_TOTAL: loss.detach()}
    return loss, stats

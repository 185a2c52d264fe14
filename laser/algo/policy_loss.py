"""verl's PPO-clip surrogate with dual clip, the policy-gradient term of E1, with the ratio per token
or per sequence (GSPO) and optional truncated importance weights against the rollout."""

from __future__ import annotations

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.importance import RatioLevel, importance_log_ratio
from laser.algo.kl import MAX_LOG_RATIO, kl_estimate
from laser.algo.masked import AggMode, aggregate_loss, masked_mean
from laser.algo.stats import Reduction

# the stats of `clipped_policy_loss`, and how a step's micro-batches combine them
POLICY_LOSS_STATS = {
    names.POLICY_LOSS: Reduction.SHARE,  # normalised by the step's counts
    names.POLICY_CLIPFRAC: Reduction.TOKEN_MEAN,
    names.POLICY_DUAL_CLIPFRAC: Reduction.TOKEN_MEAN,
    names.POLICY_APPROX_KL: Reduction.TOKEN_MEAN,
}


def _dual_clip(clipped: Tensor, adv: Tensor, dual_clip: float | None) -> tuple[Tensor, Tensor]:
    """Dual clip of verl's PPO surrogate (E1): cap negative-advantage token losses at -A * c.

    Args:
        clipped: (N, T) PPO-clip per-token loss.
        adv: (N, 1) advantages.
        dual_clip: The cap c > 1, or ``None`` for no dual clip.

    Returns:
        (N, T) per-token loss and (N, T) bool mask of tokens where the cap is active.

    Raises:
        ValueError: If ``dual_clip`` is not None and not > 1.
    """
    match dual_clip:
        case None:
            return clipped, torch.zeros_like(clipped, dtype=torch.bool)
        case _:
            if not dual_clip > 1.0:
                raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")
            cap = -adv * dual_clip  # (N, 1)
            active = (clipped > cap) & (adv < 0)  # (N, T)
            return torch.where(active, cap.expand_as(clipped), clipped), active


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = 3.0,
    agg: AggMode = "token_mean",
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
    ratio_level: RatioLevel = "token",
    is_weights: Tensor | None = None,
    norm_length: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip policy loss as in verl (E1's L_PG), with asymmetric and dual clipping.

    ratio = exp(logp - old_logp) (log-ratio clamped to +-20), per token or GSPO's per-sequence
    ratio (:func:`~laser.algo.importance.importance_log_ratio`); per-token loss
    max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high)) (DAPO's clip-higher when
    clip_high > clip_low); for A < 0 additionally min(that, -A * dual_clip); times the truncated
    importance weights when given. Aggregated with :func:`laser.algo.masked.aggregate_loss`.

    Args:
        logp: (N, T) log pi_theta of the sampled response tokens (with grad).
        old_logp: (N, T) log pi_old (rollout policy) of the same tokens.
        adv: (N,) per-response advantage, broadcast over tokens.
        mask: (N, T) bool, true on response tokens (never on the self-reward token z_c).
        clip_low: Lower clip range (ratio >= 1 - clip_low).
        clip_high: Upper clip range (ratio <= 1 + clip_high).
        dual_clip: Dual-clip constant (> 1) for negative advantages; ``None`` disables it.
        agg: Aggregation mode; E1 uses ``"token_mean"``.
        num_tokens: Step-level valid-token count for micro-batching (default: local).
        num_seqs: Step-level sequence count for micro-batching (default: local).
        ratio_level: ``"token"`` (PPO/GRPO) or ``"sequence"`` (GSPO).
        is_weights: (N, T) detached truncated importance weights against the rollout
            (:func:`~laser.algo.importance.truncated_is_weights`), or ``None``.
        norm_length: The constant of ``agg="seq_mean_token_sum_norm"`` (Dr. GRPO).

    Returns:
        ``(loss, stats)``: scalar loss and ``policy/loss``, ``policy/clipfrac`` (share of tokens
        where the clipped branch is active), ``policy/dual_clipfrac`` and ``policy/approx_kl``
        (masked mean of the k3 estimate of KL(pi_old || pi_theta)).

    Raises:
        ValueError: If ``dual_clip`` is not None and not > 1.
    """
    log_ratio = (logp - old_logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)  # (N, T)
    ratio = torch.exp(importance_log_ratio(log_ratio, mask, ratio_level))  # (N, T)
    a = adv.detach().unsqueeze(-1).to(ratio.dtype)  # (N, 1)
    unclipped = -a * ratio  # (N, T)
    clipped_branch = -a * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (N, T)
    clipped = torch.maximum(unclipped, clipped_branch)  # (N, T)
    loss_mat, dual_active = _dual_clip(clipped, a, dual_clip)  # (N, T), (N, T)
    if is_weights is not None:
        loss_mat = loss_mat * is_weights.detach()  # (N, T)
    loss = aggregate_loss(loss_mat, mask, agg, num_tokens, num_seqs, norm_length)
    stats = {
        names.POLICY_LOSS: loss.detach(),
        names.POLICY_CLIPFRAC: masked_mean((clipped_branch > unclipped).float(), mask),
        names.POLICY_DUAL_CLIPFRAC: masked_mean(dual_active.float(), mask),
        names.POLICY_APPROX_KL: masked_mean(kl_estimate(log_ratio.detach(), "k3"), mask),
    }
    return loss, stats

"""Importance ratios of the policy-gradient term: GSPO's sequence-level ratio, and truncated
importance sampling against the log-probs the rollout was sampled with."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.kl import MAX_LOG_RATIO
from laser.algo.masked import masked_mean
from laser.algo.stats import Reduction

RatioLevel = Literal["token", "sequence"]

# the stats of `truncated_is_weights`, and how a step's micro-batches combine them
IS_STATS = {
    names.ROLLOUT_IS_MEAN: Reduction.TOKEN_MEAN,
    names.ROLLOUT_IS_TRUNCATED_FRAC: Reduction.TOKEN_MEAN,
}


def importance_log_ratio(log_ratio: Tensor, mask: Tensor, level: RatioLevel) -> Tensor:
    """The log importance ratio the PPO clip acts on, per token or per sequence.

    ``"token"``: PPO/GRPO's per-token log pi_theta / pi_old, returned as given. ``"sequence"``:
    GSPO's length-normalised sequence ratio (Zheng et al. 2025 "Group Sequence Policy
    Optimization", section 4.1), log s_i = (1 / |y_i|) sum_t log pi_theta / pi_old, broadcast to every
    token of the response, so that clipping keeps or drops whole responses. Aggregated with
    ``"seq_mean_token_mean"`` the clipped loss is GSPO's objective; a token-sum mode weights
    each response by its length instead (TRL warns about the same).

    Args:
        log_ratio: (N, T) per-token log pi_theta - log pi_old (with grad).
        mask: (N, T) bool, true on the tokens of each response.
        level: ``"token"`` or ``"sequence"``.

    Returns:
        (N, T) log-ratios; a sequence's value on all of its positions (0 for an empty row).

    Raises:
        ValueError: If ``level`` is unknown.
    """
    match level:
        case "token":
            return log_ratio
        case "sequence":
            per_seq = masked_mean(log_ratio, mask, dim=-1)  # (N,) log s_i
            return per_seq.unsqueeze(-1).expand_as(log_ratio)  # (N, T)
        case _:
            raise ValueError(f"unknown importance ratio level {level!r}; use 'token' or 'sequence'")


def truncated_is_weights(
    old_logp: Tensor, rollout_logp: Tensor, mask: Tensor, cap: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Truncated importance sampling (TIS) against the rollout's own log-probs.

    When the sampler's distribution differs from the training pass's (another engine or
    precision, top-p truncation), the samples are off-policy for pi_old. Each token's
    policy-gradient loss is weighted by w = min(pi_old / pi_rollout, cap) (Yao et al. 2025,
    "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"; verl's
    ``rollout_is: token`` with ``rollout_is_threshold``, TRL's ``vllm_importance_sampling_mode=
    "token_truncate"``).

    Args:
        old_logp: (N, T) log pi_old of the sampled tokens, as the training pass computes them.
        rollout_logp: (N, T) log-prob of each token under the distribution it was drawn from.
        mask: (N, T) bool, true on response tokens.
        cap: Upper bound C of the weights, >= 1 (verl: 2, TRL: 3).

    Returns:
        ``(weights, stats)``: (N, T) detached weights in [0, cap] (0 off the mask), and
        ``rollout_is/mean`` and ``rollout_is/truncated_frac`` (share of tokens at the cap) over
        the mask.

    Raises:
        ValueError: If ``cap < 1``.
    """
    if not cap >= 1.0:
        raise ValueError(f"the truncated importance sampling cap must be >= 1, got {cap}")
    log_ratio = (old_logp.detach() - rollout_logp.detach()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)  # (N, T)
    weights = torch.where(mask.bool(), ratio.clamp(max=cap), torch.zeros_like(ratio))  # (N, T)
    stats = {
        names.ROLLOUT_IS_MEAN: masked_mean(weights, mask),
        names.ROLLOUT_IS_TRUNCATED_FRAC: masked_mean((ratio > cap).float(), mask),
    }
    return weights, stats

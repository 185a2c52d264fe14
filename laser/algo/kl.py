"""Per-token KL estimators from sampled-token log-probabilities (E1's D_KL term)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.masked import AggMode, aggregate_loss, masked_mean
from laser.algo.stats import Reduction

KLEstimator = Literal["k1", "k3"]

# the stats of `kl_penalty`, and how a step's micro-batches combine them
KL_STATS = {names.KL_MEAN: Reduction.TOKEN_MEAN}

# Log-ratios are clamped to this range before exponentiating (as verl does), so padded or
# diverged positions cannot produce inf and poison gradients through torch.where.
MAX_LOG_RATIO = 20.0


def kl_estimate(log_ratio: Tensor, estimator: KLEstimator) -> Tensor:
    """Schulman's per-sample KL(q || p) estimators from d = log p(y) - log q(y), y ~ q.

    Args:
        log_ratio: d of any shape, e.g. (N, T); d = log p - log q for tokens sampled from q.
        estimator: ``"k1"`` = -d (unbiased, high variance); ``"k3"`` = exp(d) - d - 1
            (unbiased, non-negative, low variance). d is clamped to +-20 first.

    Returns:
        Per-element KL estimate, same shape as ``log_ratio``.

    Raises:
        ValueError: If ``estimator`` is unknown.
    """
    d = log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    match estimator:
        case "k1":
            return -d
        case "k3":
            return torch.exp(d) - d - 1.0
        case _:
            raise ValueError(f"unknown KL estimator {estimator!r}")


def kl_penalty(
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    estimator: KLEstimator = "k3",
    agg: AggMode = "token_mean",
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
    norm_length: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL penalty D_KL(pi_theta || pi_ref) of the RLVR objective (E1, E4), estimated per token.

    k1 = logp - ref_logp; k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1 (verl's
    ``low_var_kl`` without its +-10 output clamp).

    Args:
        logp: (N, T) log pi_theta of the sampled response tokens (with grad).
        ref_logp: (N, T) log pi_ref of the same tokens.
        mask: (N, T) bool, true on response tokens.
        estimator: ``"k1"`` or ``"k3"``.
        agg: Aggregation mode, see :func:`laser.algo.masked.aggregate_loss`.
        num_tokens: Step-level valid-token count for micro-batching (default: local).
        num_seqs: Step-level sequence count for micro-batching (default: local).
        norm_length: The constant of ``agg="seq_mean_token_sum_norm"`` (Dr. GRPO).

    Returns:
        ``(loss, stats)`` with scalar ``loss`` and ``{"kl/mean": masked token mean}``.
    """
    kl = kl_estimate(ref_logp - logp, estimator)  # (N, T)
    loss = aggregate_loss(kl, mask, agg, num_tokens, num_seqs, norm_length)
    return loss, {names.KL_MEAN: masked_mean(kl.detach(), mask)}

"""Last-token self-reward: the score (E3), its class-balanced MSE (E5) and verification metrics."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from laser.algo.masked import masked_mean
from laser.algo.stats import summarize


def self_reward_score(z_logp: Tensor, c_ref: float | Tensor, beta_v: float) -> Tensor:
    """Last-token self-rewarding score (E3): r_s = beta_v * (log pi(z_c | x, y) - c_ref).

    Args:
        z_logp: (N,) log pi_theta(z_c | x, y) at temperature 1, read from the next-token
            distribution at the EOS position.
        c_ref: Constant E[log pi_ref(z_c | x, y)] (float), or (N,) reference log-probs.
        beta_v: KL weight of the verification objective (E2), > 0.

    Returns:
        (N,) scores r_s (differentiable in ``z_logp``).
    """
    return beta_v * (z_logp - c_ref)


def _beta_v_advice(c_ref: float, max_target_logprob: float) -> str:
    """How to bring c_ref + 1/beta_v down to ``max_target_logprob``."""
    gap = max_target_logprob - c_ref
    if gap > 0:
        return f"raise beta_v to at least 1/({max_target_logprob} - c_ref) = {1.0 / gap:.4g}, or"
    return "no beta_v can fix this since c_ref >= max_target_logprob;"


def _prob_text(logprob: float) -> str:
    """exp(logprob) as text, or a note that it is not a probability (log-prob > 0)."""
    return f"{math.exp(logprob):.3g}" if logprob <= 0 else f"exp({logprob:.3g}) > 1, unreachable"


def check_c_ref(c_ref: float, beta_v: float, max_target_logprob: float = -3.0) -> None:
    """Check that E2/E3's log Z ~ 0 approximation holds for this c_ref and beta_v.

    A correct response is pushed to log pi(z_c) = c_ref + 1/beta_v (E3 targets); the
    approximation needs this to be a small probability, i.e. at most ``max_target_logprob``.

    Args:
        c_ref: Constant reference log-prob of the self-reward token, finite and negative.
        beta_v: Verification KL weight, > 0.
        max_target_logprob: Largest allowed target log-prob (default -3, probability ~0.05).

    Raises:
        ValueError: If ``beta_v <= 0``, ``c_ref`` is not finite, or the target log-prob
            c_ref + 1/beta_v exceeds ``max_target_logprob``.
    """
    if not (math.isfinite(beta_v) and beta_v > 0):
        raise ValueError(f"beta_v must be a finite positive number, got beta_v={beta_v}")
    if not math.isfinite(c_ref):
        raise ValueError(f"c_ref must be finite, got c_ref={c_ref}")
    target = c_ref + 1.0 / beta_v
    if target > max_target_logprob:
        raise ValueError(
            f"c_ref={c_ref} and beta_v={beta_v} put the target log-prob of a correct response "
            f"at c_ref + 1/beta_v = {target:.4g} (probability {_prob_text(target)}), above "
            f"max_target_logprob="
            f"{max_target_logprob}; the log Z ~ 0 approximation (E2/E3) needs a small "
            f"probability. To fix: {_beta_v_advice(c_ref, max_target_logprob)} pick a rarer "
            "self-reward token so that c_ref is lower."
        )


def _class_weights(n_c: Tensor, n_i: Tensor, balanced: bool) -> tuple[Tensor, Tensor]:
    """E5 class weights w_c = (N_c+N_i)/(2 N_c), w_i = (N_c+N_i)/(2 N_i); empty class -> 0."""
    if not balanced:
        return torch.ones_like(n_c), torch.ones_like(n_i)
    total = n_c + n_i
    w_c = torch.where(n_c > 0, total / (2.0 * torch.where(n_c > 0, n_c, 1.0)), 0.0)
    w_i = torch.where(n_i > 0, total / (2.0 * torch.where(n_i > 0, n_i, 1.0)), 0.0)
    return w_c, w_i


def _count(value: float | Tensor | None, local: Tensor) -> Tensor:
    """Step-level count if given, else the local count, as a float tensor like ``local``."""
    return local if value is None else torch.as_tensor(value, dtype=local.dtype)


def self_reward_mse(
    scores: Tensor,
    rewards: Tensor,
    finished: Tensor,
    balanced: bool = True,
    num_correct: float | Tensor | None = None,
    num_incorrect: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Class-balanced self-reward MSE (E5): sum(w * (r_s - r_v)^2) / (N_c + N_i).

    Truncated responses (no EOS) are excluded from the loss and from the counts. Passing the
    step-level ``num_correct`` / ``num_incorrect`` makes the loss additive over micro-batches.

    Args:
        scores: (N,) self-reward scores r_s (E3, raw, not clipped; with grad).
        rewards: (N,) verifier rewards r_v in {0, 1}.
        finished: (N,) bool, true where the response ended with EOS.
        balanced: Use the E5 weights (each class gets half the total weight); else all 1.
        num_correct: N_c, finished correct responses of the whole step (default: local).
        num_incorrect: N_i, finished incorrect responses of the whole step (default: local).

    Returns:
        ``(loss, stats)``: scalar loss (0 with the graph intact when no row is finished) and
        ``self_reward/mse`` plus summaries ``self_reward/score_correct/*`` and
        ``self_reward/score_incorrect/*`` over finished rows.
    """
    done = finished.bool()  # (N,)
    target = rewards.to(scores.dtype)  # (N,)
    correct = done & (target > 0.5)  # (N,)
    incorrect = done & ~(target > 0.5)  # (N,)
    n_c = _count(num_correct, correct.sum().to(scores.dtype))
    n_i = _count(num_incorrect, incorrect.sum().to(scores.dtype))
    w_c, w_i = _class_weights(n_c.to(scores.device), n_i.to(scores.device), balanced)
    weight = torch.where(correct, w_c, torch.where(incorrect, w_i, 0.0))  # (N,)
    sq_err = torch.where(done, weight * (scores - target) ** 2, 0.0)  # (N,)
    total = (n_c + n_i).to(scores.device)
    loss = sq_err.sum() / torch.where(total > 0, total, 1.0)
    stats = {
        "self_reward/mse": loss.detach(),
        **summarize("self_reward/score_correct", scores, correct),
        **summarize("self_reward/score_incorrect", scores, incorrect),
    }
    return loss, stats


def auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count 1/2).

    Computed from average ranks: AUROC = (sum of positive ranks - P(P+1)/2) / (P * Q).

    Args:
        scores: (M,) real scores; higher means "more likely positive".
        labels: (M,) bool or 0/1; true (non-zero) marks positives.

    Returns:
        Scalar float64 AUROC in [0, 1]; NaN if either class is empty.
    """
    x = scores.detach().double().reshape(-1)  # (M,)
    pos = labels.detach().bool().reshape(-1)  # (M,)
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # (U,) 1-based rank of each value's last occurrence
    avg_rank = ends - (counts.double() - 1.0) / 2.0  # (U,) average rank of each distinct value
    ranks = avg_rank[inverse]  # (M,)
    n_pos = pos.sum().double()
    n_neg = (~pos).sum().double()
    u = ranks[pos].sum() - n_pos * (n_pos + 1.0) / 2.0
    denom = n_pos * n_neg
    return torch.where(denom > 0, u / torch.where(denom > 0, denom, 1.0), math.nan)


def grouped_auroc(scores: Tensor, labels: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """AUROC within each group (a prompt's K samples), averaged over groups holding both classes.

    Best-of-k and weighted voting only compare samples of the same prompt, so this is the ranking
    quality they rely on; the pooled :func:`auroc` also rewards scores that merely track a
    prompt's difficulty.

    Args:
        scores: (P, K) scores of the K samples of each of P groups.
        labels: (P, K) bool or 0/1; true marks positives (correct responses).
        valid: Optional (P, K) bool; other samples are ignored (e.g. truncated responses).

    Returns:
        (mean AUROC over groups with at least one positive and one negative, NaN if none;
        the number of such groups), as float64 / long scalars.
    """
    s = scores.detach().double()  # (P, K)
    keep = torch.ones_like(s, dtype=torch.bool) if valid is None else valid.bool()
    pos = labels.detach().bool() & keep  # (P, K)
    neg = ~labels.detach().bool() & keep  # (P, K)
    diff = s[:, :, None] - s[:, None, :]  # (P, K, K): positive i vs negative j
    wins = (diff > 0).double() + 0.5 * (diff == 0).double()
    pairs = pos[:, :, None] & neg[:, None, :]  # (P, K, K)
    n_pairs = pairs.sum((1, 2)).double()  # (P,)
    per_group = (wins * pairs).sum((1, 2)) / n_pairs.clamp(min=1)
    has_both = n_pairs > 0
    count = has_both.sum()
    mean = torch.where(count > 0, per_group[has_both].sum() / count.clamp(min=1), math.nan)
    return mean, count


def difficulty_auroc(labels: Tensor, valid: Tensor | None = None) -> Tensor:
    """Pooled AUROC of a score that knows each prompt's accuracy and nothing about the response.

    The reference that tells how much of a pooled :func:`auroc` prompt difficulty alone explains.
    Split-half, so that no sample's own label enters its score: the first half of each prompt's K
    samples is scored by the accuracy of the second half. With few samples that estimate is noisy,
    which lowers the result: it is a lower bound of the difficulty-only AUROC, tight as K grows.

    Args:
        labels: (P, K) bool or 0/1 verifier verdicts of K >= 2 samples per prompt.
        valid: Optional (P, K) bool; scored samples outside it are ignored (e.g. truncated
            responses). The accuracy estimate counts every sample of the second half.

    Returns:
        Scalar float64 AUROC; NaN if the scored half lacks a class.
    """
    k = labels.shape[1]
    if k < 2:
        raise ValueError(f"difficulty_auroc needs at least 2 samples per prompt, got {k}")
    half = k // 2
    correct = labels.detach().bool()  # (P, K)
    keep = torch.ones_like(correct) if valid is None else valid.bool()
    accuracy = correct[:, half:].double().mean(1, keepdim=True).expand(-1, half)  # (P, half)
    scored = keep[:, :half]
    return auroc(accuracy[scored], correct[:, :half][scored])


def _harmonic_mean(a: Tensor, b: Tensor) -> Tensor:
    """2ab / (a + b), 0 when a + b == 0."""
    s = a + b
    return torch.where(s > 0, 2.0 * a * b / torch.where(s > 0, s, 1.0), 0.0)


def self_verify_metrics(
    scores: Tensor,
    rewards: Tensor,
    valid: Tensor | None = None,
    threshold: float = 0.5,
) -> dict[str, Tensor]:
    """Self-verification quality of the scores (E8 step 3, paper section 6 F1).

    A row is predicted "correct" when its score > ``threshold``.

    Args:
        scores: (N,) raw self-reward scores. The threshold test is the same clipped or not, but
            AUROC ranks them as given: clipping to [0, 1] would tie every saturated score.
        rewards: (N,) verifier rewards in {0, 1} (the ground truth).
        valid: Optional (N,) bool; only these rows count (default all).
        threshold: Decision threshold on the score.

    Returns:
        ``self_verify/acc_correct`` (share of correct rows predicted correct),
        ``self_verify/acc_incorrect`` (share of incorrect rows predicted incorrect; both 0 for an
        empty class), ``self_verify/f1`` (paper F1: harmonic mean of the two),
        ``self_verify/pr_f1`` (precision/recall F1, positive class = correct) and
        ``self_verify/auroc`` (NaN if a class is empty); all detached scalars.
    """
    s = scores.detach().float()  # (N,)
    keep = torch.ones_like(s, dtype=torch.bool) if valid is None else valid.bool()  # (N,)
    pos = rewards.detach() > 0.5  # (N,)
    pred = s > threshold  # (N,)
    acc_c = masked_mean(pred.float(), keep & pos)
    acc_i = masked_mean((~pred).float(), keep & ~pos)
    tp = (keep & pred & pos).sum().float()
    fp = (keep & pred & ~pos).sum().float()
    fn = (keep & ~pred & pos).sum().float()
    pr_denom = 2.0 * tp + fp + fn
    pr_f1 = torch.where(pr_denom > 0, 2.0 * tp / torch.where(pr_denom > 0, pr_denom, 1.0), 0.0)
    return {
        "self_verify/acc_correct": acc_c,
        "self_verify/acc_incorrect": acc_i,
        "self_verify/f1": _harmonic_mean(acc_c, acc_i),
        "self_verify/pr_f1": pr_f1,
        "self_verify/auroc": auroc(s[keep], pos[keep]).float(),
    }

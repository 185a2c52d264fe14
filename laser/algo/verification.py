"""Verification quality of self-reward scores: AUROC (pooled, within prompts, difficulty-only),
the paper's F1 (section 6), expected calibration error and the score's correlation with length.

Hand-written in torch, like the AUROC: ``laser.algo`` imports torch only. The tests check ECE and
Spearman against torchmetrics where the definitions agree (see their docstrings for where not).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.masked import masked_mean
from laser.algo.stats import average_ranks


def auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count 1/2).

    Computed from average ranks: AUROC = (sum of positive ranks - P(P+1)/2) / (P * Q).

    Args:
        scores: (M,) real scores; higher means "more likely positive".
        labels: (M,) bool or 0/1; true (non-zero) marks positives.

    Returns:
        Scalar float64 AUROC in [0, 1]; NaN if either class is empty.
    """
    ranks = average_ranks(scores)  # (M,)
    pos = labels.detach().bool().reshape(-1)  # (M,)
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
    num_bins: int = 10,
) -> dict[str, Tensor]:
    """Self-verification quality of the scores (E8 step 3, paper section 6 F1, and calibration).

    A row is predicted "correct" when its score > ``threshold``.

    Args:
        scores: (N,) raw self-reward scores. The threshold test is the same clipped or not, but
            AUROC ranks them as given: clipping to [0, 1] would tie every saturated score.
        rewards: (N,) verifier rewards in {0, 1} (the ground truth).
        valid: Optional (N,) bool; only these rows count (default all).
        threshold: Decision threshold on the score.
        num_bins: Equal-width bins of the calibration error.

    Returns:
        ``self_verify/acc_correct`` (share of correct rows predicted correct),
        ``self_verify/acc_incorrect`` (share of incorrect rows predicted incorrect; both 0 for an
        empty class), ``self_verify/f1`` (paper F1: harmonic mean of the two),
        ``self_verify/pr_f1`` (precision/recall F1, positive class = correct) and
        ``self_verify/auroc`` (NaN if a class is empty) and ``self_verify/ece`` (expected
        calibration error of the score clipped to [0, 1], read as the probability of being
        correct; NaN without rows); all detached scalars.
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
    ece = expected_calibration_error(s[keep].clamp(0.0, 1.0), pos[keep], num_bins)
    return {
        names.SELF_VERIFY_ACC_CORRECT: acc_c,
        names.SELF_VERIFY_ACC_INCORRECT: acc_i,
        names.SELF_VERIFY_F1: _harmonic_mean(acc_c, acc_i),
        names.SELF_VERIFY_PR_F1: pr_f1,
        names.SELF_VERIFY_AUROC: auroc(s[keep], pos[keep]).float(),
        names.SELF_VERIFY_ECE: ece.float(),
    }


def best_threshold_f1(scores: Tensor, rewards: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The paper's F1 (section 6) at the threshold that maximises it: how far calibration alone,
    moving the threshold off 0.5 without changing the ranking, could lift F1.

    A row is predicted "correct" when its score > the threshold; the candidates are every distinct
    score and one below the lowest (all accepted).

    Args:
        scores: (N,) raw self-reward scores.
        rewards: (N,) verifier rewards in {0, 1}.
        valid: Optional (N,) bool; only these rows count (default all).

    Returns:
        ``(f1, threshold)``, scalars; both NaN without rows of both classes.
    """
    keep = torch.ones_like(scores, dtype=torch.bool) if valid is None else valid.bool()
    s = scores.detach().double()[keep]  # (M,)
    pos = rewards.detach()[keep] > 0.5  # (M,)
    if pos.all() or not pos.any():
        return torch.tensor(math.nan), torch.tensor(math.nan)
    cuts = torch.cat([s.min().reshape(1) - 1.0, torch.unique(s)])  # (C,) candidate thresholds
    at_or_below = [torch.searchsorted(torch.sort(s[m]).values, cuts, right=True) for m in (pos, ~pos)]
    acc_c = 1.0 - at_or_below[0].double() / pos.sum()  # (C,) correct rows accepted
    acc_i = at_or_below[1].double() / (~pos).sum()  # (C,) incorrect rows rejected
    f1 = _harmonic_mean(acc_c, acc_i)  # (C,)
    best = int(torch.argmax(f1))
    return f1[best].float(), cuts[best].float()


def expected_calibration_error(probs: Tensor, labels: Tensor, num_bins: int = 10) -> Tensor:
    """Expected calibration error over equal-width bins: sum_b (n_b / n) |acc_b - conf_b|.

    The bins are [0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1], the last one closed; conf_b is the mean
    probability and acc_b the share of positives in bin b. torchmetrics'
    ``binary_calibration_error`` gives the same value except that it puts a probability of
    exactly 1 in a bin of its own, and clipped scores often are exactly 1.

    Args:
        probs: (M,) predicted probabilities of the positive class, in [0, 1].
        labels: (M,) bool or 0/1; true marks positives.
        num_bins: Number of bins B, at least 1.

    Returns:
        Scalar float64 ECE in [0, 1]; NaN when M = 0.

    Raises:
        ValueError: If ``num_bins < 1`` or a probability is NaN or lies outside [0, 1].
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    p = probs.detach().double().reshape(-1)  # (M,)
    y = labels.detach().bool().reshape(-1).double()  # (M,)
    if not bool(((p >= 0) & (p <= 1)).all()):  # NaN fails too
        raise ValueError("probs must lie in [0, 1] (and not be NaN): clip the self-reward score first")
    bins = (p * num_bins).floor().long().clamp(max=num_bins - 1)  # (M,) bin of each row
    conf = torch.zeros(num_bins, dtype=torch.float64, device=p.device).scatter_add_(0, bins, p)  # (B,)
    acc = torch.zeros_like(conf).scatter_add_(0, bins, y)  # (B,)
    # n_b / n * |acc_b - conf_b| = |sum of labels - sum of probs in b| / n
    n = p.numel()
    return (acc - conf).abs().sum() / n if n > 0 else torch.tensor(math.nan, dtype=torch.float64)


def spearman(x: Tensor, y: Tensor) -> Tensor:
    """Spearman rank correlation: the Pearson correlation of the average ranks (ties share theirs).

    Unlike torchmetrics' ``spearman_corrcoef``, which adds 1e-6 to the denominator and so returns
    0 for a constant input, a correlation that is not defined is NaN.

    Args:
        x: (M,) real values.
        y: (M,) real values paired with ``x``.

    Returns:
        Scalar float64 in [-1, 1]; NaN when M < 2 or either input is constant.
    """
    rx, ry = average_ranks(x), average_ranks(y)  # (M,), (M,)
    if rx.numel() < 2:
        return torch.tensor(math.nan, dtype=torch.float64)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = ((dx * dx).sum() * (dy * dy).sum()).sqrt()
    rho = (dx * dy).sum() / torch.where(denom > 0, denom, 1.0)
    return torch.where(denom > 0, rho.clamp(-1.0, 1.0), math.nan)


def length_correlations(
    scores: Tensor, lengths: Tensor, rewards: Tensor, valid: Tensor | None = None
) -> dict[str, Tensor]:
    """Spearman correlation of the score with the response length (paper section 4: about -0.42).

    Length also tracks correctness (wrong answers often run longer or shorter), so a pooled
    correlation may come from the two classes' different lengths alone: it is also given within
    correct and within incorrect responses.

    Args:
        scores: (N,) raw self-reward scores (ranks are the same clipped or not, except for ties).
        lengths: (N,) response lengths in tokens.
        rewards: (N,) verifier rewards in {0, 1}.
        valid: Optional (N,) bool; only these rows count (finished responses).

    Returns:
        ``self_verify/length_spearman``, ``self_verify/length_spearman_correct`` and
        ``self_verify/length_spearman_incorrect``: detached float32 scalars, NaN where fewer than
        two rows or a constant input.
    """
    keep = torch.ones_like(scores, dtype=torch.bool) if valid is None else valid.bool()  # (N,)
    pos = rewards.detach() > 0.5  # (N,)
    rows = {
        names.SELF_VERIFY_LENGTH_SPEARMAN: keep,
        names.SELF_VERIFY_LENGTH_SPEARMAN_CORRECT: keep & pos,
        names.SELF_VERIFY_LENGTH_SPEARMAN_INCORRECT: keep & ~pos,
    }
    return {name: spearman(scores[m], lengths[m].double()).float() for name, m in rows.items()}

"""Inference-time scaling with the self-reward (E8): pass@k, (weighted) majority voting, best-of-k.

Answers are given as integer class ids per problem (equal ids = equivalent answers, -1 = no answer),
so the functions stay pure tensor code; the caller maps answer strings to ids.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pass_at_k(num_samples: Tensor, num_correct: Tensor, k: int) -> Tensor:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n - c, k) / C(n, k), per problem.

    Args:
        num_samples: (P,) samples drawn per problem (n >= k).
        num_correct: (P,) correct samples among them (c).
        k: budget.

    Returns:
        (P,) float64 probability that at least one of k samples drawn without replacement is correct.
    """
    n, c = num_samples.double(), num_correct.double()
    if bool((n < k).any()):
        raise ValueError(f"pass@{k} needs at least {k} samples per problem")
    # prod_{i=n-c+1}^{n} (1 - k / i), computed stably in log space; 1 when n - c < k
    i = torch.arange(1, int(n.max().item()) + 1, dtype=torch.float64)  # (N,)
    in_range = (i[None] > (n - c)[:, None]) & (i[None] <= n[:, None])  # (P, N)
    log_terms = torch.log1p(-k / i).expand_as(in_range)  # invalid for i <= k: only used when n - c >= k
    log_fail = torch.where(in_range, log_terms, torch.zeros_like(log_terms)).sum(-1)  # (P,)
    fail = torch.where(n - c < k, torch.zeros_like(log_fail), torch.exp(log_fail))
    return 1.0 - fail


def vote(answer_ids: Tensor, weights: Tensor | None = None) -> Tensor:
    """Majority voting (weights None) or weighted voting (E8 step 4) over k answers per problem.

    Args:
        answer_ids: (P, k) long answer classes; -1 (no answer) never wins.
        weights: (P, k) non-negative vote weights (e.g. clipped self-reward scores); None = 1 each.

    Returns:
        (P,) index in [0, k) of a sample carrying the winning answer (ties: the answer first seen),
        or -1 where no sample has an answer.
    """
    p, k = answer_ids.shape
    w = torch.ones(p, k, dtype=torch.float64) if weights is None else weights.double().clamp(min=0)
    valid = answer_ids >= 0  # (P, k)
    same = (answer_ids[:, :, None] == answer_ids[:, None, :]) & valid[:, None, :]  # (P, k, k)
    totals = (same.double() * w[:, None, :]).sum(-1)  # (P, k) total weight of each sample's answer
    totals = torch.where(valid, totals, torch.full_like(totals, -1.0))
    # first index reaching the maximum: argmax returns the first maximal element
    best = totals.argmax(-1)  # (P,)
    return torch.where(valid.any(-1), best, torch.full_like(best, -1))


def best_of_k(scores: Tensor, has_answer: Tensor) -> Tensor:
    """(P,) index of the highest-scoring sample with an answer (-1 if none), per problem."""
    masked = torch.where(has_answer, scores.double(), torch.full_like(scores.double(), -torch.inf))
    best = masked.argmax(-1)
    return torch.where(has_answer.any(-1), best, torch.full_like(best, -1))


def picked_correct(picked: Tensor, correct: Tensor) -> Tensor:
    """(P,) float: whether the picked sample (index per problem, -1 = none) is correct."""
    safe = picked.clamp(min=0)[:, None]
    return torch.where(picked >= 0, correct.gather(-1, safe).squeeze(-1).double(), 0.0)


def scaling_curves(
    answer_ids: Tensor,
    correct: Tensor,
    scores: Tensor,
    ks: list[int],
    num_resamples: int = 100,
    generator: torch.Generator | None = None,
) -> dict[str, dict[int, Tensor]]:
    """Per-problem accuracy of each method at each k, averaged over random size-k subsets of K.

    Args:
        answer_ids: (P, K) answer classes (-1 = no answer).
        correct: (P, K) bool, verifier verdicts.
        scores: (P, K) raw self-reward scores: best-of-k ranks them as they are, weighted voting
            uses them clipped to [0, 1] (E8; clipping would turn best-of-k's ranking into ties).
        ks: budgets, each <= K.
        num_resamples: random subsets per problem and k (one subset suffices when k == K).
        generator: RNG for the subsets.

    Returns:
        {method: {k: (P,) mean accuracy}} for methods pass@k (unbiased estimator), pass@1,
        majority, weighted_majority and best_of_k.
    """
    p, big_k = answer_ids.shape
    out: dict[str, dict[int, Tensor]] = {
        m: {} for m in ("pass@k", "pass@1", "majority", "weighted_majority", "best_of_k")
    }
    n = torch.full((p,), big_k)
    weights = scores.double().clamp(0, 1)
    for k in ks:
        out["pass@k"][k] = pass_at_k(n, correct.sum(-1), k)
        out["pass@1"][k] = correct.double().mean(-1)
        reps = 1 if k == big_k else num_resamples
        acc = {m: torch.zeros(p, dtype=torch.float64) for m in ("majority", "weighted_majority", "best_of_k")}
        for _ in range(reps):
            idx = torch.rand(p, big_k, generator=generator).argsort(-1)[:, :k]  # (P, k)
            a, c, w = answer_ids.gather(-1, idx), correct.gather(-1, idx), weights.gather(-1, idx)
            acc["majority"] += picked_correct(vote(a), c)
            acc["weighted_majority"] += picked_correct(vote(a, w), c)
            acc["best_of_k"] += picked_correct(best_of_k(scores.gather(-1, idx), a >= 0), c)
        for m, total in acc.items():
            out[m][k] = total / reps
    return out

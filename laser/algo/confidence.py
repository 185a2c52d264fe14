"""Training-free confidences of a sampled response, and the test-time rules that use a confidence.

Per-token statistics come from the generation's own next-token distributions (full vocabulary,
temperature 1); each response-level confidence reduces them over the response's tokens:

* mean token log-prob: the mean of log pi(y_t | x, y_<t) over the response;
* self-certainty (Kang et al. 2025): the mean over the response of KL(U || p_t), the divergence of
  each next-token distribution p_t from the uniform one, KL(U || p) = -log V - mean_j log p(j);
* DeepConf (Fu et al. 2025): the token confidence C_t = -mean of the top-k log-probs of p_t,
  averaged over sliding windows of the response (the lowest window: "lowest group confidence") or
  over its last tokens ("tail confidence").

Then: DeepConf's confidence-filtered voting, the weighted vote's margin, adaptive stopping, and the
confidence of a voted answer. Answers are integer classes per prompt (-1 = no answer), as in
:mod:`laser.algo.scaling`. Torch only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from laser.algo.scaling import vote


def token_self_certainty(log_probs: Tensor) -> Tensor:
    """(...,) KL(U || p) of (..., V) log-probs: -log V - mean_j log p(j); 0 for the uniform p."""
    return -math.log(log_probs.shape[-1]) - log_probs.mean(-1)


def token_confidence(log_probs: Tensor, top_k: int) -> Tensor:
    """(...,) DeepConf's token confidence of (..., V) log-probs: -mean of the `top_k` largest (of
    all V when V < top_k)."""
    return -log_probs.topk(min(top_k, log_probs.shape[-1]), dim=-1).values.mean(-1)


def response_mean(values: Tensor, mask: Tensor) -> Tensor:
    """(N,) mean of (N, R) per-token `values` over the response tokens (`mask` (N, R) 1); 0 if none.

    Used for the mean token log-prob (values: the sampled tokens' log-probs) and self-certainty
    (values: :func:`token_self_certainty` of each step)."""
    m = mask.double()
    return ((values.double() * m).sum(-1) / m.sum(-1).clamp(min=1)).float()


def lowest_group_confidence(conf: Tensor, mask: Tensor, window: int) -> Tensor:
    """(N,) DeepConf's lowest group confidence: the smallest mean of `conf` over `window`
    consecutive response tokens (every full window); a response shorter than `window` is one group.

    Args:
        conf: (N, R) token confidences (:func:`token_confidence`).
        mask: (N, R) 1 on response tokens (a prefix of each row).
        window: group size in tokens, >= 1.
    """
    lengths = mask.sum(-1)  # (N,)
    whole = response_mean(conf, mask)  # (N,)
    width = conf.shape[1]
    if window > width:
        return whole
    csum = torch.nn.functional.pad((conf.double() * mask).cumsum(-1), (1, 0))  # (N, R + 1)
    means = (csum[:, window:] - csum[:, :-window]) / window  # (N, R - w + 1): windows ending at w-1..R-1
    ends = torch.arange(window - 1, width, device=conf.device)  # (R - w + 1,)
    inside = ends[None] < lengths[:, None]  # (N, R - w + 1)
    lowest = means.masked_fill(~inside, math.inf).min(-1).values.float()  # (N,)
    return torch.where(lengths < window, whole, lowest)


def tail_confidence(conf: Tensor, mask: Tensor, tail: int) -> Tensor:
    """(N,) DeepConf's tail confidence: the mean of `conf` (N, R) over the last `tail` response
    tokens of each row (`mask` (N, R)); the whole response when it is shorter."""
    lengths = mask.sum(-1, keepdim=True)  # (N, 1)
    pos = torch.arange(conf.shape[1], device=conf.device)[None]  # (1, R)
    in_tail = mask.bool() & (pos >= lengths - tail)  # (N, R)
    return response_mean(conf, in_tail)


def filtered_vote(answer_ids: Tensor, confidence: Tensor, weights: Tensor, keep: float) -> Tensor:
    """DeepConf's confidence-filtered voting: keep the ceil(keep * k) most confident of a prompt's k
    samples that have an answer, then vote among them weighted by `weights`.

    Args:
        answer_ids: (P, k) answer classes (-1 = no answer).
        confidence: (P, k) the ranking confidence (higher = kept first).
        weights: (P, k) non-negative vote weights of the kept samples.
        keep: the share of samples kept, in (0, 1].

    Returns:
        (P,) index of a sample carrying the winning answer, -1 where none has an answer.
    """
    has = answer_ids >= 0
    ranked = torch.where(has, confidence.double(), -math.inf)  # (P, k)
    rank = ranked.argsort(dim=-1, descending=True, stable=True).argsort(-1)  # (P, k) 0 = most confident
    kept = has & (rank < math.ceil(keep * answer_ids.shape[1]))
    return vote(torch.where(kept, answer_ids, -1), weights)


def answer_totals(answer_ids: Tensor, weights: Tensor) -> Tensor:
    """(P, k) total weight of each sample's answer among the prompt's k samples (-1: no answer)."""
    valid = answer_ids >= 0
    same = (answer_ids[:, :, None] == answer_ids[:, None, :]) & valid[:, None, :]  # (P, k, k)
    totals = (same.double() * weights.double().clamp(min=0)[:, None, :]).sum(-1)  # (P, k)
    return torch.where(valid, totals, -1.0)


def vote_margin(answer_ids: Tensor, weights: Tensor) -> Tensor:
    """(P,) the weighted vote's margin: (leading answer's weight - runner-up's) / all weight, in
    [0, 1]; 1 for a unanimous vote, 0 without answers or weight.

    Args:
        answer_ids: (P, k) answer classes (-1 = no answer).
        weights: (P, k) non-negative vote weights.
    """
    lead = vote_lead(answer_ids, weights).double()  # (P,)
    total = (weights.double().clamp(min=0) * (answer_ids >= 0)).sum(-1)  # (P,)
    return torch.where(total > 0, lead / total.clamp(min=1e-300), 0.0).float()


def vote_lead(answer_ids: Tensor, weights: Tensor) -> Tensor:
    """(P,) the weighted vote's lead: the leading answer's total weight minus the runner-up's, in
    vote-weight units (0 without answers). Unlike the margin it grows with the evidence: two
    agreeing samples lead by their summed weight, where the margin is already 1 after one.

    Args:
        answer_ids: (P, k) answer classes (-1 = no answer).
        weights: (P, k) non-negative vote weights.
    """
    totals = answer_totals(answer_ids, weights)  # (P, k), -1 where no answer
    top, lead = totals.max(-1)  # (P,), (P,)
    leader = answer_ids.gather(-1, lead[:, None])  # (P, 1)
    runner_up = torch.where(answer_ids != leader, totals, 0.0).clamp(min=0).max(-1).values  # (P,)
    return (top.clamp(min=0) - runner_up).float()


def stop_statistic(answer_ids: Tensor, weights: Tensor, rule: str = "margin") -> Tensor:
    """(P,) what adaptive sampling compares with its threshold, over the samples drawn so far:
    'margin', the weighted vote's :func:`vote_margin`; 'lead', its :func:`vote_lead`; 'best', the
    largest vote weight of a sample with an answer (-inf without one).

    Args:
        answer_ids: (P, n) answer classes of the samples drawn (-1 = no answer).
        weights: (P, n) non-negative vote weights.
        rule: 'margin', 'lead' or 'best'.
    """
    match rule:
        case "margin":
            return vote_margin(answer_ids, weights)
        case "lead":
            return vote_lead(answer_ids, weights)
        case "best":
            return torch.where(answer_ids >= 0, weights.float(), -math.inf).max(-1).values
    raise ValueError(f"rule={rule!r} is unknown; use 'margin', 'lead' or 'best'")


def adaptive_vote(
    answer_ids: Tensor, weights: Tensor, batch: int, threshold: float, rule: str = "margin"
) -> tuple[Tensor, Tensor]:
    """Draw a prompt's samples `batch` at a time (in the given order) and stop once the stopping
    statistic passes `threshold` (>), or at all K; then vote, weighted, over the samples drawn.

    Args:
        answer_ids: (P, K) answer classes in drawing order (-1 = no answer).
        weights: (P, K) non-negative vote weights.
        batch: samples drawn per round, >= 1.
        threshold: stop when the statistic > threshold (a margin threshold of 1 never stops early).
        rule: 'margin', 'lead' or 'best' (see :func:`stop_statistic`).

    Returns:
        (picked (P,) index of a sample of the winning answer, -1 if none; used (P,) samples drawn).
    """
    p, big_k = answer_ids.shape
    used = torch.full((p,), big_k, dtype=torch.long, device=answer_ids.device)
    stopped = torch.zeros(p, dtype=torch.bool, device=answer_ids.device)
    for n in range(batch, big_k, batch):  # rounds before the last; at K every prompt stops
        stop = ~stopped & (stop_statistic(answer_ids[:, :n], weights[:, :n], rule) > threshold)
        used = torch.where(stop, n, used)
        stopped |= stop
    drawn = torch.arange(big_k, device=answer_ids.device)[None] < used[:, None]  # (P, K)
    return vote(torch.where(drawn, answer_ids, -1), weights), used


def answer_confidence(answer_ids: Tensor, picked: Tensor, probs: Tensor) -> Tensor:
    """(P,) the confidence of each prompt's picked answer: the mean probability of being right over
    the samples that gave that answer (they are right or wrong together); 0 where none was picked.

    Args:
        answer_ids: (P, k) answer classes (-1 = no answer).
        picked: (P,) index of a sample of the chosen answer, -1 for none.
        probs: (P, k) calibrated probabilities that each sample is right.
    """
    chosen = answer_ids.gather(-1, picked.clamp(min=0)[:, None])  # (P, 1)
    same = (answer_ids == chosen) & (answer_ids >= 0)  # (P, k)
    mean = (probs.double() * same).sum(-1) / same.sum(-1).clamp(min=1)
    return torch.where(picked >= 0, mean, 0.0).float()

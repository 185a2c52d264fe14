"""The confidence methods, in one registry: a method is a function of one generated batch that
gives each response a confidence (higher: more likely right), plus how that confidence weighs a
vote and which per-token statistic the generation must record for it.

To add a method: write `def my_method(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor` and
add `"my_method": Method(my_method, ...)` to `METHODS`. The per-token math lives in
`laser.algo.confidence`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from laser.algo import self_reward_score
from laser.algo.confidence import lowest_group_confidence, response_mean, tail_confidence
from laser.rollout.types import Rollout


@dataclass(frozen=True)
class GeneratedBatch:
    """n sampled responses: the rollout (with the per-token statistics asked for) and their texts."""

    rollout: Rollout
    texts: list[str]


@dataclass(frozen=True)
class ScoringContext:
    """What the methods need besides the samples.

    Attributes:
        top_k: DeepConf's k (the generation records the token confidence with it).
        group_window: DeepConf's group, in tokens.
        tail: DeepConf's tail, in tokens.
        beta_v, c_ref, loss: LaSeR's score (see `laser.algo.self_reward_score`).
        written_check: text -> whether the response's written check agrees with its steps; None
            for a task without one.
    """

    top_k: int
    group_window: int
    tail: int
    beta_v: float
    c_ref: float
    loss: str = "mse"
    written_check: Callable[[str], bool] | None = None


def laser_score(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """LaSeR's last-token score r_s (E3/E8), 0 for a truncated response (no EOS, no score)."""
    ro = batch.rollout
    z_logp = torch.nan_to_num(ro.z_logp.float().cpu(), nan=ctx.c_ref)
    return self_reward_score(z_logp, ctx.c_ref, ctx.beta_v, ctx.loss) * ro.finished.cpu()


def mean_logprob(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """The mean log-prob of the sampled tokens under the distribution they were drawn from."""
    return response_mean(batch.rollout.logp, batch.rollout.response_mask).cpu()


def self_certainty(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """Self-certainty (Kang et al. 2025): the mean over the response of KL(U || p_t)."""
    return response_mean(batch.rollout.token_self_certainty, batch.rollout.response_mask).cpu()


def deepconf_lowest_group(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """DeepConf's lowest group confidence over sliding windows of `ctx.group_window` tokens."""
    ro = batch.rollout
    return lowest_group_confidence(ro.token_confidence, ro.response_mask, ctx.group_window).cpu()


def deepconf_tail(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """DeepConf's tail confidence over the last `ctx.tail` tokens."""
    return tail_confidence(batch.rollout.token_confidence, batch.rollout.response_mask, ctx.tail).cpu()


def written_verdict(batch: GeneratedBatch, ctx: ScoringContext) -> Tensor:
    """1 where the response's own written check agrees with its steps, else 0."""
    return torch.tensor([float(ctx.written_check(text)) for text in batch.texts])


def clip_unit(score: Tensor) -> Tensor:
    return score.clamp(0.0, 1.0)


def non_negative(score: Tensor) -> Tensor:
    return score.clamp(min=0.0)


@dataclass(frozen=True)
class Method:
    """A registered confidence.

    Attributes:
        score: (batch, context) -> (n,) confidences.
        weight: (...,) confidences -> non-negative vote weights.
        records: the per-token statistic the generation must record ('score' for LaSeR's one
            token, 'self_certainty', 'top_k'), or '' for none (the sampled log-probs always are).
        probability: the confidence reads as a probability of being right without calibration.
        needs_written_check: only for tasks that write a check.
    """

    score: Callable[[GeneratedBatch, ScoringContext], Tensor]
    weight: Callable[[Tensor], Tensor] = non_negative
    records: str = ""
    probability: bool = False
    needs_written_check: bool = False


METHODS: dict[str, Method] = {
    "laser": Method(laser_score, weight=clip_unit, records="score", probability=True),
    "mean_logprob": Method(mean_logprob, weight=torch.exp),  # the geometric-mean token probability
    "self_certainty": Method(self_certainty, records="self_certainty"),
    "deepconf_lowest_group": Method(deepconf_lowest_group, records="top_k"),
    "deepconf_tail": Method(deepconf_tail, records="top_k"),
    "written_verdict": Method(written_verdict, needs_written_check=True),
}


def applicable(names: list[str], ctx: ScoringContext) -> list[str]:
    """The methods of `names` that this task can compute (a written verdict needs a written check)."""
    return [n for n in names if ctx.written_check is not None or not METHODS[n].needs_written_check]


def recording(names: list[str], top_k: int) -> dict[str, bool | int]:
    """`Sampler.sample` keyword arguments that record what the methods `names` need."""
    records = {METHODS[n].records for n in names}
    top_k = top_k if "top_k" in records else 0
    return {"self_certainty": "self_certainty" in records, "confidence_top_k": top_k}


def score_batch(
    names: list[str], batch: GeneratedBatch, ctx: ScoringContext
) -> dict[str, tuple[Tensor, float]]:
    """{method: ((n,) confidences, seconds its reduction took)}."""
    out = {}
    for name in names:
        start = time.perf_counter()
        out[name] = (METHODS[name].score(batch, ctx).float(), time.perf_counter() - start)
    return out

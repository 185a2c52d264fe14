"""A training step's samples: one round of sampling, or DAPO's dynamic sampling (Yu et al. 2025,
section 3.2), which drops the groups whose verifier rewards are all equal and samples more prompts
until the batch is full; and which rows and tokens the policy gradient then trains on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from laser import metric_names as names
from laser.algo import fill_order, group_rows, mask_truncated, overlong_penalty, varied_groups
from laser.configs import AlgoConfig, OverlongConfig
from laser.data.collate import PromptBatch
from laser.rollout.types import Rollout

# one round: the prompts' rollout, its (N,) verifier rewards and its (N,) training rewards
SampleRound = Callable[[PromptBatch], tuple[Rollout, torch.Tensor, torch.Tensor]]


@dataclass
class StepSamples:
    """What a step trains on: B' prompts and their B' * G responses, a prompt's G rows consecutive.

    Attributes:
        batch: the prompts, those of the policy gradient first.
        rollout: their responses.
        rewards: (N,) the verifier's 0/1 rewards (the self-reward's target).
        paid: (N,) the rewards the advantages use (shaped: check credit, overlong penalty).
        policy_rows: the leading rows the policy gradient trains on; the rest (dropped groups kept
            with `keep_for_mse`) train the self-reward's verification loss only.
        stats: the sampling's metrics (`rollout/...`), empty without dynamic sampling.
    """

    batch: PromptBatch
    rollout: Rollout
    rewards: torch.Tensor
    paid: torch.Tensor
    policy_rows: int
    stats: dict[str, torch.Tensor] = field(default_factory=dict)

    @staticmethod
    def of_round(batch: PromptBatch, sample_round: SampleRound) -> StepSamples:
        """One round of sampling, every row trained (dynamic sampling off)."""
        rollout, rewards, paid = sample_round(batch)
        return StepSamples(batch, rollout, rewards, paid, policy_rows=len(rollout))


def sample_dynamically(
    batch: PromptBatch,
    sample_round: SampleRound,
    more_prompts: Callable[[], PromptBatch],
    algo: AlgoConfig,
    sum_over_ranks: Callable[[dict], dict],
    pad_id: int,
) -> StepSamples:
    """Sample `batch`, then rounds of `more_prompts()` while fewer than len(batch) groups vary (on
    any data-parallel rank, so that all ranks take as many rounds and rows), at most
    `algo.dynamic_sampling.max_extra_rounds`.

    The batch is the first len(batch) varied groups in the order drawn, topped up with dropped
    groups past the cap; with `keep_for_mse` every other drawn group follows it, for the
    verification loss only. `sum_over_ranks` sums a dict of scalars over data-parallel ranks.
    """
    cfg, group_size = algo.dynamic_sampling, algo.group_size

    def any_rank_short(short: bool) -> bool:
        return bool(sum_over_ranks({"short": float(short)})["short"] > 0)

    parts = [(batch, *sample_round(batch))]
    varied = varied_groups(parts[0][2].cpu(), group_size)  # (B,)
    while len(parts) <= cfg.max_extra_rounds and any_rank_short(int(varied.sum()) < len(batch)):
        prompts = more_prompts()
        parts.append((prompts, *sample_round(prompts)))
        varied = torch.cat([varied, varied_groups(parts[-1][2].cpu(), group_size)])  # (D,)
    order = fill_order(varied, len(batch))  # (D,) the batch's groups first
    groups = order if cfg.keep_for_mse else order[: len(batch)]
    rows = group_rows(groups, group_size)  # (B' * G,) on the CPU, which indexes any device
    prompts = PromptBatch.cat([p[0] for p in parts], pad_id).rows(groups)
    rollout = Rollout.cat([p[1] for p in parts], pad_id).rows(rows)
    rewards, paid = (torch.cat([p[i] for p in parts])[rows] for i in (2, 3))
    stats = {
        names.SAMPLES_DRAWN: torch.tensor(float(varied.numel() * group_size)),
        names.DROPPED_FRAC: (~varied).float().mean(),
        names.ROUNDS: torch.tensor(float(len(parts))),
    }
    return StepSamples(prompts, rollout, rewards, paid, len(batch) * group_size, stats)


def overlong_shaped(
    paid: torch.Tensor, rollout: Rollout, cfg: OverlongConfig, max_length: int
) -> torch.Tensor:
    """(N,) training rewards plus DAPO's soft overlong penalty (when cfg.buffer_frac > 0)."""
    if cfg.buffer_frac == 0:
        return paid
    buffer = cfg.buffer_frac * max_length
    return paid + overlong_penalty(rollout.lengths, max_length, buffer, cfg.penalty_factor).to(paid.device)


def policy_mask(samples: StepSamples, algo: AlgoConfig) -> torch.Tensor | None:
    """(N, T) bool mask of the policy-gradient and KL terms: the response tokens of the policy rows,
    without truncated responses under `algo.overlong.mask_truncated`; None when that is every
    response token."""
    rollout, rows = samples.rollout, samples.policy_rows
    if rows == len(rollout) and not algo.overlong.mask_truncated:
        return None
    mask = rollout.response_mask.bool().clone()  # (N, T)
    if algo.overlong.mask_truncated:
        mask = mask_truncated(mask, rollout.finished)
    mask[rows:] = False  # rows kept for the verification loss only
    return mask

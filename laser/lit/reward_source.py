"""The advantages of a training step, from the reward source its phase picks: the verifier's
reward (E1), mixed with the self-reward (E6), or the self-reward alone after the switch step."""

from __future__ import annotations

from collections.abc import Callable

import torch

from laser import metric_names as names
from laser.algo import StepPhase, group_advantages, self_reward_advantages, self_reward_as_reward
from laser.configs import AlgoConfig


def step_advantages(
    rewards: torch.Tensor,
    scores: torch.Tensor | None,
    finished: torch.Tensor,
    algo: AlgoConfig,
    phase: StepPhase,
    policy_rows: int | None = None,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(N,) advantages and their stats.

    Args:
        rewards: (N,) verifier rewards.
        scores: (N,) self-reward scores of the rollout (needed when `phase.needs_scores`).
        finished: (N,) bool, the response ended with EOS.
        algo: group size, advantage scale, tau and the filter threshold.
        phase: the step's phase: whether the self-reward is mixed into the verifier's advantage
            (E6) or is the only reward (after the switch step).
        policy_rows: the leading rows the policy gradient trains on (None: all); the others, kept
            for the verification loss only, get advantage 0.
        gather: the rows of every data-parallel rank (for adv_scale='batch_std'; None: this rank's).

    Returns:
        ``(adv, stats)``; with a switch configured the stats hold ``reward_source/self`` (1 after
        the switch) and ``reward_source/reward/mean``, the mean reward the advantages came from.
    """
    total = len(rewards)
    n = total if policy_rows is None else policy_rows
    scores = None if scores is None else scores[:n]
    adv, stats = _policy_advantages(rewards[:n], scores, finished[:n], algo, phase, gather)
    if n < total:
        adv = torch.cat([adv, adv.new_zeros(total - n)])  # (N,)
    return adv, stats


def _policy_advantages(rewards, scores, finished, algo: AlgoConfig, phase: StepPhase, gather):
    """`step_advantages` over the policy gradient's rows."""
    if phase.needs_scores and scores is None:
        raise ValueError("self-reward advantages need the rollout's scores (sample with score=True)")
    source = self_reward_as_reward(scores, finished) if phase.self_only else rewards  # (n,)
    batch_std = None
    if algo.adv_scale == "batch_std" and gather is not None:
        batch_std = gather(source).float().std()  # over every rank's rows
    adv = group_advantages(source, algo.group_size, algo.adv_scale, batch_std=batch_std)
    stats = {}
    if phase.mixing:
        sr = algo.self_reward
        adv, stats = self_reward_advantages(
            scores, adv, finished, algo.group_size, sr.tau, sr.filter_threshold
        )
    if algo.reward_source.self_after_step is not None:
        stats[names.REWARD_SOURCE_SELF] = torch.tensor(float(phase.self_only))
        stats[names.REWARD_SOURCE_REWARD_MEAN] = source.float().mean()
    return adv, stats

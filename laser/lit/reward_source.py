"""The advantages of a training step, from the reward source the schedule picks: the verifier's
reward (E1), mixed with the self-reward (E6), or the self-reward alone after the switch step."""

from __future__ import annotations

import torch

from laser.algo import group_advantages, self_reward_advantages, self_reward_as_reward
from laser.configs import AlgoConfig


def step_advantages(
    rewards: torch.Tensor,
    scores: torch.Tensor | None,
    finished: torch.Tensor,
    algo: AlgoConfig,
    mixing: bool,
    self_only: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(N,) advantages and their stats.

    Args:
        rewards: (N,) verifier rewards.
        scores: (N,) self-reward scores of the rollout (needed when `mixing` or `self_only`).
        finished: (N,) bool, the response ended with EOS.
        algo: group size, advantage scale, tau and the filter threshold.
        mixing: mix the self-reward into the verifier's advantage (E6).
        self_only: the self-reward is the only reward (after the switch step).

    Returns:
        ``(adv, stats)``; with a switch configured the stats hold ``reward_source/self`` (1 after
        the switch) and ``reward_source/reward/mean``, the mean reward the advantages came from.
    """
    if (mixing or self_only) and scores is None:
        raise ValueError("self-reward advantages need the rollout's scores (sample with score=True)")
    if self_only:
        source = self_reward_as_reward(scores, finished)  # (N,)
        adv, stats = group_advantages(source, algo.group_size, algo.adv_scale), {}
    else:
        source = rewards
        adv = group_advantages(rewards, algo.group_size, algo.adv_scale)
        stats = {}
        if mixing:
            sr = algo.self_reward
            adv, stats = self_reward_advantages(
                scores, adv, finished, algo.group_size, sr.tau, sr.filter_threshold
            )
    if algo.reward_source.self_after_step is not None:
        stats["reward_source/self"] = torch.tensor(float(self_only))
        stats["reward_source/reward/mean"] = source.float().mean()
    return adv, stats

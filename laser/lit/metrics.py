"""Metrics of a batch of responses and of their self-reward scores (keys `{quantity}/{stat}`)."""

from __future__ import annotations

import torch

from laser import metric_names as names
from laser.algo import length_correlations, self_reward_mse, self_verify_metrics, summarize
from laser.configs import SelfRewardConfig


def rollout_metrics(rollout, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reward, accuracy, response length and truncation of a rollout (or a dict with
    `finished` and `lengths`)."""
    get = rollout.get if isinstance(rollout, dict) else lambda k: getattr(rollout, k)
    finished, lengths = get("finished"), get("lengths").float()
    return {
        **summarize(names.REWARD, rewards),
        names.ACCURACY: (rewards > 0.5).float().mean(),
        **summarize(names.RESPONSE_LENGTH, lengths),
        names.TRUNCATED_FRAC: (~finished).float().mean(),
    }


@torch.no_grad()
def self_reward_metrics(
    scores: torch.Tensor,
    rewards: torch.Tensor,
    finished: torch.Tensor,
    lengths: torch.Tensor,
    sr: SelfRewardConfig,
) -> dict[str, torch.Tensor]:
    """MSE of the score (the Brier score under loss=sft), score distributions per class,
    self-verification quality, calibration and correlation with response length, over finished rows."""
    _, mse_stats = self_reward_mse(scores, rewards, finished, sr.balanced)
    return {
        **mse_stats,
        **summarize(names.SCORE, scores, finished),
        **self_verify_metrics(scores, rewards, finished, sr.threshold, sr.calibration_bins),
        **length_correlations(scores, lengths, rewards, finished),
    }

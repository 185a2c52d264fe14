"""The step's advantages from the configured reward source: the verifier's, mixed, or the
self-reward alone after the switch."""

from __future__ import annotations

import pytest
import torch

from laser.algo import StepPhase, group_advantages, self_reward_advantages, self_reward_as_reward
from laser.configs import AlgoConfig
from laser.lit.reward_source import step_advantages

from helpers import config_block

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
SCORES = torch.tensor([0.2, 0.9, 1.4, -0.2, 0.6, 0.1, 0.3, 0.8])
FINISHED = torch.tensor([True, True, True, True, True, False, True, True])
VERIFIER = StepPhase(step=1, alpha=0.5, mixing=False, self_only=False)
MIXING = StepPhase(step=1, alpha=0.5, mixing=True, self_only=False)
SELF_ONLY = StepPhase(step=11, alpha=0.0, mixing=False, self_only=True)


def algo(self_after_step=None) -> AlgoConfig:
    return config_block(
        "algo",
        group_size=4,
        self_reward={"tau": 0.3, "filter_threshold": 0.05},
        reward_source={"self_after_step": self_after_step},
    )


def test_self_only_advantages_come_from_the_clipped_score_alone() -> None:
    adv, stats = step_advantages(REWARDS, SCORES, FINISHED, algo(10), SELF_ONLY)
    expected = group_advantages(self_reward_as_reward(SCORES, FINISHED), 4)
    torch.testing.assert_close(adv, expected)
    flipped, _ = step_advantages(1 - REWARDS, SCORES, FINISHED, algo(10), SELF_ONLY)
    torch.testing.assert_close(flipped, adv)  # the verifier's reward plays no part
    assert stats["reward_source/self"].item() == 1.0
    # clipped, truncated as 0: (0.2, 0.9, 1, 0, 0.6, 0, 0.3, 0.8) -> mean 3.8 / 8
    assert stats["reward_source/reward/mean"].item() == pytest.approx(3.8 / 8)


def test_before_the_switch_the_verifier_gives_the_advantages() -> None:
    adv, stats = step_advantages(REWARDS, None, FINISHED, algo(10), VERIFIER)
    torch.testing.assert_close(adv, group_advantages(REWARDS, 4))
    assert stats["reward_source/self"].item() == 0.0
    assert stats["reward_source/reward/mean"].item() == pytest.approx(3 / 8)
    mixed, mixed_stats = step_advantages(REWARDS, SCORES, FINISHED, algo(), MIXING)
    expected, _ = self_reward_advantages(SCORES, group_advantages(REWARDS, 4), FINISHED, 4, 0.3, 0.05)
    torch.testing.assert_close(mixed, expected)
    assert "reward_source/self" not in mixed_stats  # no switch configured: nothing to mark


def test_self_reward_advantages_need_scores() -> None:
    with pytest.raises(ValueError, match="score=True"):
        step_advantages(REWARDS, None, FINISHED, algo(0), SELF_ONLY)
    with pytest.raises(ValueError, match="score=True"):
        step_advantages(REWARDS, None, FINISHED, algo(), MIXING)

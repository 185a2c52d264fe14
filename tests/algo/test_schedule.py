"""Tests for laser.algo.schedule.self_reward_phase (E7)."""

import pytest

from laser.algo.schedule import self_reward_phase


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (1, (False, False)),
        (2, (False, False)),  # step == w_r: still plain RLVR
        (3, (True, False)),  # MSE from w_r + 1
        (5, (True, False)),  # step == w_r + w_sr: no mixing yet
        (6, (True, True)),  # mixing from w_r + w_sr + 1
    ],
)
def test_warmup_boundaries(step, expected):
    assert self_reward_phase(step, 2, 3) == expected


def test_orz_schedule_without_reasoning_warmup():
    # ORZ: w_r = 0, w_sr = 200 -> MSE from step 1, mixing from step 201
    assert self_reward_phase(1, 0, 200) == (True, False)
    assert self_reward_phase(200, 0, 200) == (True, False)
    assert self_reward_phase(201, 0, 200) == (True, True)

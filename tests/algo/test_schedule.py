"""Tests for laser.algo.schedule: warm-ups (E7) and the switch to the self-reward as the only reward."""

import pytest

from laser.algo.schedule import self_reward_only, self_reward_phase, switch_step


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


@pytest.mark.parametrize(
    ("value", "max_steps", "expected"),
    [
        (None, 1000, None),
        (300, 1000, 300),
        (0, 1000, 0),  # the self-reward from the first step
        (300.0, -1, 300),  # a step number needs no run length
        (0.3, 1000, 300),
        (0.3, 4, 1),  # 1.2 rounds to 1
        (0.5, 4, 2),
    ],
)
def test_switch_step_from_a_step_or_a_fraction(value, max_steps, expected):
    assert switch_step(value, max_steps) == expected


@pytest.mark.parametrize(("value", "max_steps"), [(0.3, -1), (-2, 100), (2.5, 100)])
def test_switch_step_rejects_what_names_no_step(value, max_steps):
    with pytest.raises(ValueError, match="self_after_step"):
        switch_step(value, max_steps)


def test_self_reward_only_after_the_switch_step():
    # switch 2: steps 1 and 2 use the verifier, 3 on the self-reward
    assert [self_reward_only(s, 2) for s in (1, 2, 3, 4)] == [False, False, True, True]
    assert not any(self_reward_only(s, None) for s in (1, 10**6))
    assert self_reward_only(1, 0)

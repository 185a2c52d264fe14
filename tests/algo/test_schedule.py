"""Tests for laser.algo.schedule: warm-ups (E7) and the switch to the self-reward as the only reward."""

import itertools

import pytest

from laser.algo.schedule import lr_factor, self_reward_only, self_reward_phase, switch_step


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


def test_lr_factor_warms_up_then_decays_linearly_to_the_final_ratio():
    # warm-up of 4 steps, 14 in all, down to 0.1: 10 decay steps of 0.09 each
    factors = [lr_factor(s, warmup_steps=4, total_steps=14, final_lr_ratio=0.1) for s in range(14)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(0.91)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(factors[3:]))
    assert lr_factor(100, 4, 14, 0.1) == pytest.approx(0.1)  # past the end it stays at the floor


def test_lr_factor_of_one_is_the_constant_rate():
    assert [lr_factor(s, 0, 10, 1.0) for s in range(10)] == [1.0] * 10
    assert lr_factor(0, 0, -1, 1.0) == 1.0  # a constant rate needs no run length

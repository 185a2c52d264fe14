"""Tests for laser.algo.schedule: the step's phase (warm-ups E7, the switch to the self-reward as
the only reward), the switch step and the learning rate."""

import itertools

import pytest

from laser.algo.schedule import StepPhase, lr_factor, step_phase, switch_step

LASER = {"alpha": 0.5, "tau": 0.3}


def phase(step: int, w_r: int = 0, w_sr: int = 0, switch: int | None = None, **weights) -> StepPhase:
    weights = LASER | weights
    return step_phase(
        step, reasoning_warmup_steps=w_r, self_reward_warmup_steps=w_sr, switch=switch, **weights
    )


def terms(p: StepPhase) -> tuple[float, bool, bool, bool]:
    return p.alpha, p.mixing, p.self_only, p.needs_scores


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (1, (0.0, False, False, False)),
        (2, (0.0, False, False, False)),  # step == w_r: still plain RLVR
        (3, (0.5, False, False, False)),  # the verification loss from w_r + 1
        (5, (0.5, False, False, False)),  # step == w_r + w_sr: no mixing yet
        (6, (0.5, True, False, True)),  # mixing from w_r + w_sr + 1, on scored rollouts
    ],
)
def test_warmup_boundaries(step, expected):
    assert terms(phase(step, w_r=2, w_sr=3)) == expected
    assert phase(step, w_r=2, w_sr=3).step == step


def test_orz_schedule_without_reasoning_warmup():
    # ORZ: w_r = 0, w_sr = 200 -> the verification loss from step 1, mixing from step 201
    assert terms(phase(1, w_sr=200)) == (0.5, False, False, False)
    assert terms(phase(200, w_sr=200)) == (0.5, False, False, False)
    assert terms(phase(201, w_sr=200)) == (0.5, True, False, True)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (3, (0.5, True, False, True)),
        (4, (0.5, True, False, True)),  # the switch step itself: still the verifier's reward
        (5, (0.0, False, True, True)),  # after it: the self-reward alone, on scores, no l_SR
        (50, (0.0, False, True, True)),
    ],
)
def test_after_the_switch_the_self_reward_is_the_only_reward(step, expected):
    assert terms(phase(step, switch=4)) == expected


def test_a_switch_inside_the_warm_ups_ends_them():
    # switch after step 1, warm-ups of 2 + 3 steps: step 1 is plain RLVR, then self-reward only
    assert terms(phase(1, w_r=2, w_sr=3, switch=1)) == (0.0, False, False, False)
    assert terms(phase(2, w_r=2, w_sr=3, switch=1)) == (0.0, False, True, True)
    assert terms(phase(1, switch=0)) == (0.0, False, True, True)  # from the first step


def test_tau_zero_never_mixes_and_never_needs_scores_before_the_switch():
    assert terms(phase(100, w_r=2, w_sr=3, tau=0.0)) == (0.5, False, False, False)
    assert terms(phase(100, switch=10, tau=0.0)) == (0.0, False, True, True)


def test_alpha_zero_never_trains_the_verification_loss():
    # GRPO's untrained self-reward: alpha = tau = 0, scored and logged only
    assert all(terms(phase(s, alpha=0.0, tau=0.0)) == (0.0, False, False, False) for s in (1, 2, 1000))
    assert terms(phase(6, w_r=2, w_sr=3, alpha=0.0)) == (0.0, True, False, True)  # mixing alone


def test_a_phase_is_frozen_and_consistent():
    p = phase(1)
    with pytest.raises(AttributeError):
        p.alpha = 1.0
    with pytest.raises(ValueError, match="not both"):
        StepPhase(step=1, alpha=0.0, mixing=True, self_only=True)
    with pytest.raises(ValueError, match="alpha"):
        StepPhase(step=1, alpha=-0.1, mixing=False, self_only=False)


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

"""When each self-reward term is active: the warm-ups (E7) and the switch to the self-reward as the
only reward (paper section 5)."""

from __future__ import annotations


def self_reward_phase(
    step: int, reasoning_warmup_steps: int, self_reward_warmup_steps: int
) -> tuple[bool, bool]:
    """Which self-reward terms are active at a training step (E7, steps counted from 1).

    The MSE (E5) starts once step > w_r; advantage mixing (E6) once step > w_r + w_sr, i.e.
    w_sr counts after w_r (official code).

    Args:
        step: Current optimiser step, 1-based.
        reasoning_warmup_steps: w_r, steps of plain RLVR before the MSE is added.
        self_reward_warmup_steps: w_sr, further steps of MSE-only before mixing starts.

    Returns:
        ``(mse_on, mixing_on)``.
    """
    mse_on = step > reasoning_warmup_steps
    mixing_on = step > reasoning_warmup_steps + self_reward_warmup_steps
    return mse_on, mixing_on


def switch_step(self_after_step: float | None, max_steps: int) -> int | None:
    """The last step whose advantages come from the verifier, before the self-reward takes over.

    Args:
        self_after_step: None (never switch), a whole number N >= 0 of steps, or a fraction in
            (0, 1) of ``max_steps`` (rounded to the nearest step).
        max_steps: The run's number of optimiser steps (needed for a fraction).

    Returns:
        The switch step N (steps N + 1, N + 2, ... use the self-reward), or None.

    Raises:
        ValueError: If ``self_after_step`` is negative or a non-whole number >= 1, or a fraction
            is given without a positive ``max_steps``.
    """
    if self_after_step is None:
        return None
    if 0 < self_after_step < 1:
        if max_steps < 1:
            raise ValueError(
                f"self_after_step={self_after_step} is a fraction of the run, which needs "
                f"trainer.max_steps >= 1 (got {max_steps}); give a step number instead"
            )
        return round(self_after_step * max_steps)
    if self_after_step < 0 or not float(self_after_step).is_integer():
        raise ValueError(
            f"self_after_step={self_after_step} must be a whole number of steps >= 0 or a fraction in (0, 1)"
        )
    return int(self_after_step)


def self_reward_only(step: int, switch: int | None) -> bool:
    """Whether the self-reward is the only reward at a step (1-based): after the switch step.

    Args:
        step: Current optimiser step, 1-based.
        switch: The switch step from :func:`switch_step`, or None (never).

    Returns:
        True when ``step > switch``.
    """
    return switch is not None and step > switch


def lr_factor(step: int, warmup_steps: int, total_steps: int, final_lr_ratio: float) -> float:
    """The learning rate's multiplier at an optimiser step: a linear warm-up to 1, then a linear
    decay that reaches ``final_lr_ratio`` at the last step (1 keeps it constant).

    Args:
        step: Optimiser steps already taken, 0-based (the scheduler's count).
        warmup_steps: Steps of the linear warm-up (0 or 1: none).
        total_steps: The run's number of optimiser steps (read only when decaying).
        final_lr_ratio: The multiplier at the last step, in (0, 1].

    Returns:
        The multiplier, in (0, 1].
    """
    warmup = max(warmup_steps, 1)
    if step + 1 < warmup:
        return (step + 1) / warmup
    if final_lr_ratio == 1.0 or total_steps <= warmup:
        return 1.0
    done = min(1.0, (step + 1 - warmup) / (total_steps - warmup))
    return 1.0 - (1.0 - final_lr_ratio) * done

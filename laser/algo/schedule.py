"""When each self-reward term is active: the warm-ups (E7) and the switch to the self-reward as the
only reward (paper section 5), as one :class:`StepPhase` per training step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepPhase:
    """Which terms of LaSeR's objective are on at one training step (:func:`step_phase`).

    Attributes:
        step: The optimiser step, 1-based.
        alpha: The weight of the verification loss l_SR (E4, E5) at this step: the configured
            alpha once the reasoning warm-up is over, and 0 during it and after the switch (its
            target is the verifier's reward, which then trains nothing).
        mixing: The self-reward is mixed into the verifier's advantages (E6).
        self_only: The self-reward is the only reward (after the switch step); the verifier's
            reward is only logged.
    """

    step: int
    alpha: float
    mixing: bool
    self_only: bool

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got alpha={self.alpha}")
        if self.mixing and self.self_only:
            raise ValueError("a step mixes the self-reward into the advantages or uses it alone, not both")

    @property
    def needs_scores(self) -> bool:
        """Whether the rollout must be scored as it is sampled: the advantages use the self-reward."""
        return self.mixing or self.self_only


def step_phase(
    step: int,
    *,
    alpha: float,
    tau: float,
    reasoning_warmup_steps: int,
    self_reward_warmup_steps: int,
    switch: int | None,
) -> StepPhase:
    """The terms that are on at a training step (E7 and the switch, steps counted from 1).

    The verification loss (E5, weight ``alpha``) is on once step > w_r; advantage mixing (E6,
    weight ``tau``) once step > w_r + w_sr, i.e. w_sr counts after w_r (official code). After the
    switch step the self-reward is the only reward: no mixing, and no verification loss.

    Args:
        step: Current optimiser step, 1-based.
        alpha: The configured weight of the verification loss, >= 0 (0: never on, as in GRPO).
        tau: The configured weight of the self-reward in the advantages (0: never mixed).
        reasoning_warmup_steps: w_r, steps of plain RLVR before the verification loss is added.
        self_reward_warmup_steps: w_sr, further steps of verification loss only before mixing.
        switch: The switch step from :func:`switch_step` (the last step rewarded by the
            verifier), or None (never).

    Returns:
        The step's :class:`StepPhase`.
    """
    self_only = switch is not None and step > switch
    loss_on = step > reasoning_warmup_steps and not self_only
    mixing_on = step > reasoning_warmup_steps + self_reward_warmup_steps
    return StepPhase(
        step=step,
        alpha=alpha if loss_on else 0.0,
        mixing=mixing_on and tau > 0 and not self_only,
        self_only=self_only,
    )


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

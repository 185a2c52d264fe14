"""Warm-up schedule of the self-reward terms (E7)."""

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

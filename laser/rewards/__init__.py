"""Verifiers: 0/1 rewards for responses against reference answers."""

from __future__ import annotations

from laser.rewards.arithmetic import ArithmeticVerifier
from laser.rewards.verifier import Verifier


def make_verifier(cfg, task=None) -> Verifier | ArithmeticVerifier:
    """The verifier named by a `RewardConfig`; the arithmetic task's config `task`, when given,
    says whether solutions end with a self-check (`check`), which the step verifier scores only
    with `score_check`."""
    self_check = task is not None and task.check != "none"
    match cfg.kind:
        case "arithmetic_steps":  # `validate` has checked that a scored check has a check
            kind = task.check if self_check else "none"
            score_check = kind if cfg.score_check else "none"
            return ArithmeticVerifier(kind, score_check, cfg.check_credit, cfg.credit_for)
        case "math_verify":
            return Verifier(
                timeout_s=cfg.timeout_s,
                max_answer_chars=cfg.max_answer_chars,
                num_workers=cfg.num_workers,
                single_box=cfg.single_box,
            )
        case _:
            raise ValueError(
                f"reward.kind={cfg.kind!r} is unknown: give one of 'math_verify', 'arithmetic_steps'"
            )

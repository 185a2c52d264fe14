"""Verifiers: 0/1 rewards for responses against reference answers."""

from __future__ import annotations

from dataclasses import asdict

from laser.rewards.arithmetic import ArithmeticVerifier
from laser.rewards.verifier import Verifier


def make_verifier(cfg, task=None) -> Verifier | ArithmeticVerifier:
    """The verifier named by a `RewardConfig`; the arithmetic task's config `task`, when given,
    says whether solutions end with a self-check (`check`), which the step verifier scores only
    with `check=scored`."""
    options = {
        k: v for k, v in asdict(cfg).items() if k not in ("kind", "check", "check_credit", "credit_for")
    }
    self_check = task is not None and task.check != "none"
    match cfg.kind:
        case "arithmetic_steps":  # `validate` has checked that a scored check has a check
            kind = task.check if self_check else "none"
            score_check = kind if cfg.check == "scored" else "none"
            return ArithmeticVerifier(kind, score_check, cfg.check_credit, cfg.credit_for)
        case "math_verify":
            return Verifier(**options)
        case _:
            raise ValueError(
                f"reward.kind={cfg.kind!r} is unknown: give one of 'math_verify', 'arithmetic_steps'"
            )

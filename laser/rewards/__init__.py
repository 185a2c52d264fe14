"""Verifiers: 0/1 rewards for responses against reference answers."""

from __future__ import annotations

from dataclasses import asdict

from laser.rewards.arithmetic import ArithmeticVerifier
from laser.rewards.verifier import Verifier


def make_verifier(cfg, task=None) -> Verifier | ArithmeticVerifier:
    """The verifier named by a `RewardConfig`; the arithmetic task's config `task`, when given,
    says whether solutions end with a self-check (`check`) the step verifier leaves unscored."""
    options = {k: v for k, v in asdict(cfg).items() if k != "kind"}
    match cfg.kind:
        case "arithmetic_steps":
            return ArithmeticVerifier(self_check=task is not None and task.check != "none")
        case _:
            return Verifier(**options)

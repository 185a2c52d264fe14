"""Verifiers: 0/1 rewards for responses against reference answers."""

from __future__ import annotations

from dataclasses import asdict

from laser.rewards.arithmetic import ArithmeticVerifier
from laser.rewards.verifier import Verifier


def make_verifier(cfg) -> Verifier | ArithmeticVerifier:
    """The verifier named by a `RewardConfig`."""
    options = {k: v for k, v in asdict(cfg).items() if k != "kind"}
    match cfg.kind:
        case "arithmetic_steps":
            return ArithmeticVerifier()
        case _:
            return Verifier(**options)

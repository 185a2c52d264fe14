"""What a training step trained on, handed to the callbacks: `LaserModule.training_step` returns
it in its outputs, which Lightning passes to every callback's `on_train_batch_end(outputs, ...)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from laser.algo import StepPhase
from laser.data.collate import PromptBatch
from laser.rollout.logprobs import SequenceLogprobs
from laser.rollout.types import Rollout

OUTPUT_KEY = "record"  # training_step's outputs: {"record": StepRecord}


@dataclass(frozen=True)
class StepRecord:
    """One training step's prompts and responses, as its update trained on them.

    Attributes:
        batch: The B' prompts, those of the policy gradient first.
        rollout: Their B' * G responses, a prompt's G rows consecutive.
        rewards: (N,) the verifier's 0/1 rewards (the self-reward's target).
        ref: The reference model's pass over the rollout, or None without a reference.
        phase: The terms of the objective that were on.
    """

    batch: PromptBatch
    rollout: Rollout
    rewards: torch.Tensor
    ref: SequenceLogprobs | None
    phase: StepPhase

    def outputs(self) -> dict[str, StepRecord]:
        """The training step's outputs that carry this record."""
        return {OUTPUT_KEY: self}

    @staticmethod
    def of(outputs: Mapping[str, Any] | None) -> StepRecord | None:
        """The record in a training step's `outputs` (None when the step returned none)."""
        return (outputs or {}).get(OUTPUT_KEY)

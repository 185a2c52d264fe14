"""Verifier of the arithmetic task's worked solutions: every step must be right, not only the answer.

With final-answer rewards a small model that partly guesses the answer from the prompt is rewarded
for wrong worked steps whose errors cancel ("38+1=38, 38-32=7 #### 7" for 38+1-32); RL then
reinforces wrong arithmetic. Checking the steps makes the reward mean "the reasoning is correct".
"""

from __future__ import annotations

import re

import torch

from laser.data.arithmetic import CHECK_START, CHOICES_END, apply_op
from laser.rewards.verifier import extract_answer

_PROMPT = re.compile(r"^\d+(?:[+\-*]\d+)+=$")
_CHOICES = re.compile(r"^-?\d+(?:;-?\d+)*:")
_STEP = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")


def worked_solution_correct(prompt: str, response: str, answer: str, self_check: bool = False) -> bool:
    """Whether `response` folds the prompt's expression left to right with every step correct and
    ends with `#### <answer>` equal to the reference; with `self_check` (the task's
    `check=reverse`) the check after the steps is not scored."""
    prompt = prompt.strip()
    if _CHOICES.match(prompt):  # a list of candidate answers leads the expression
        prompt = prompt.split(CHOICES_END, 1)[1]
    if not _PROMPT.match(prompt) or extract_answer(response) != answer.strip():
        return False
    operands = [int(x) for x in re.findall(r"\d+", prompt)]
    ops = re.findall(r"[+\-*]", prompt)
    body = response.split("####")[0]
    if self_check:
        body = body.split(CHECK_START)[0]
    steps = [s.strip() for s in body.split(",")]
    if len(steps) != len(ops):
        return False
    acc = operands[0]
    for step, op, x in zip(steps, ops, operands[1:], strict=True):
        m = _STEP.match(step)
        if m is None or (int(m[1]), m[2], int(m[3])) != (acc, op, x):
            return False
        acc = apply_op(op, acc, x)
        if int(m[4]) != acc:
            return False
    return str(acc) == answer.strip()


class ArithmeticVerifier:
    """Callable like `Verifier`: 0/1 rewards, 1 only for a fully correct worked solution (its
    self-check, with `self_check`, not scored)."""

    def __init__(self, self_check: bool = False) -> None:
        self.self_check = self_check

    def __call__(self, responses: list[str], answers: list[str], prompts: list[str]) -> torch.Tensor:
        rewards = [
            float(worked_solution_correct(p, r, a, self_check=self.self_check))
            for r, a, p in zip(responses, answers, prompts, strict=True)
        ]
        return torch.tensor(rewards)

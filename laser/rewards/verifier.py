"""Rule-based verifier: extract the final answer of a response and compare it with the reference.

Rewards are 0/1. Plain integers take a fast path; anything else goes through math-verify.
"""

from __future__ import annotations

import re

import torch

_MARKER = re.compile(r"####\s*([^\s#]+)")
_INT = re.compile(r"[+-]?\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last `\\boxed{...}`, else the last `#### <answer>`, else None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    found = _MARKER.findall(text)
    return found[-1].strip() if found else None


def answers_match(pred: str, gold: str) -> bool:
    """Whether two final answers are equal: exact integers directly, otherwise via math-verify."""
    if _INT.fullmatch(pred) and _INT.fullmatch(gold):
        return int(pred) == int(gold)
    from math_verify import parse, verify  # slow import (sympy); only for non-integer answers

    return bool(verify(parse(f"\\boxed{{{gold}}}"), parse(f"\\boxed{{{pred}}}")))


class Verifier:
    """Callable: responses and reference answers in, a (N,) float tensor of 0/1 rewards out."""

    def __call__(self, responses: list[str], answers: list[str]) -> torch.Tensor:
        rewards = []
        for response, gold in zip(responses, answers, strict=True):
            pred = extract_answer(response)
            rewards.append(float(pred is not None and answers_match(pred, gold)))
        return torch.tensor(rewards)

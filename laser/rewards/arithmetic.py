"""Verifier of the arithmetic task's worked solutions: every step must be right, not only the answer.

With final-answer rewards a small model that partly guesses the answer from the prompt is rewarded
for wrong worked steps whose errors cancel ("38+1=38, 38-32=7 #### 7" for 38+1-32); RL then
reinforces wrong arithmetic. Checking the steps makes the reward mean "the reasoning is correct".
"""

from __future__ import annotations

import re

import torch

from laser.configs import RewardConfig
from laser.data.arithmetic import CHECK_START, CHOICES_END, apply_op, check_text
from laser.rewards.verifier import extract_answer

_PROMPT = re.compile(r"^\d+(?:[+\-*]\d+)+=$")
_CHOICES = re.compile(r"^-?\d+(?:;-?\d+)*:")
_STEP = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")


def worked_solution_correct(
    prompt: str, response: str, answer: str, self_check: bool = False, score_check: str = "none"
) -> bool:
    """Whether `response` folds the prompt's expression left to right with every step correct and
    ends with `#### <answer>` equal to the reference; with `self_check` (the task's `check`) the
    check after the steps is not scored, unless `score_check` names its kind ('reverse',
    'difference'): then it must be the right check too, written as the task writes it."""
    expression = _expression(prompt)
    if expression is None or extract_answer(response) != answer.strip():
        return False
    operands, ops = expression
    body = response.split("####")[0]
    body, _, written_check = body.partition(CHECK_START) if self_check else (body, "", "")
    acc = folded_value(operands, ops, body)
    if acc is None:
        return False
    if score_check != "none":
        expected = check_text(operands, ops, acc, score_check)
        if _squash(written_check) != _squash(expected):
            return False
    return str(acc) == answer.strip()


def folded_value(operands: list[int], ops: list[str], steps_text: str) -> int | None:
    """The value the steps `a op b=c, c op d=e, ...` fold the expression to when every step is
    right, else None."""
    steps = [s.strip() for s in steps_text.split(",")]
    if len(steps) != len(ops):
        return None
    acc = operands[0]
    for step, op, x in zip(steps, ops, operands[1:], strict=True):
        m = _STEP.match(step)
        if m is None or (int(m[1]), m[2], int(m[3])) != (acc, op, x):
            return None
        acc = apply_op(op, acc, x)
        if int(m[4]) != acc:
            return None
    return acc


def flags_its_wrong_fold(prompt: str, response: str) -> bool:
    """Whether a self-checking response whose forward steps are wrong writes a nonzero difference
    (`12+35=48, 48-7=41; ...; 29-28=1`): it flags its own error, its check right or not."""
    expression = _expression(prompt)
    if expression is None or written_difference(response) in (None, 0):
        return False
    steps = response.split("####")[0].partition(CHECK_START)[0]
    return folded_value(*expression, steps) is None


def _expression(prompt: str) -> tuple[list[int], list[str]] | None:
    """The operands and operators of a task prompt (after its list of candidate answers, if any),
    or None when the prompt is not one."""
    prompt = prompt.strip()
    if _CHOICES.match(prompt):  # a list of candidate answers leads the expression
        prompt = prompt.split(CHOICES_END, 1)[1]
    if not _PROMPT.match(prompt):
        return None
    return [int(x) for x in re.findall(r"\d+", prompt)], re.findall(r"[+\-*]", prompt)


def _squash(text: str) -> str:
    return "".join(text.split())


def check_agrees(response: str, kind: str = "reverse") -> bool:
    """Whether a self-checking response's check ends where its forward steps ended
    (`12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40`: both 40; a difference step after a second
    `;` is not read); with `kind="split"`, whose check never ends at the answer, whether the
    written difference is 0 (`...; -7+35=28; 40-12=28, 28-28=0`). False without a check."""
    if kind == "split":
        return written_difference(response) == 0
    parts = response.split("####")[0].split(CHECK_START)
    if len(parts) < 2:
        return False
    ends = [re.findall(r"=(-?\d+)", part) for part in parts[:2]]
    return bool(ends[0]) and bool(ends[1]) and ends[0][-1] == ends[1][-1]


def written_difference(response: str) -> int | None:
    """The value a self-checking response's difference step ends at, after its second `;`
    (`...; -7+35=28; 40-12=28, 28-28=0` gives 0), or None where it wrote none."""
    parts = response.split("####")[0].split(CHECK_START)
    ends = re.findall(r"=(-?\d+)", parts[2]) if len(parts) > 2 else []
    return int(ends[-1]) if ends else None


def check_right_for_its_steps(prompt: str, response: str, kind: str) -> bool:
    """Whether a self-checking response's check (and difference, with `kind="difference"`) is the
    one the task writes for the value its own forward steps ended at, right or wrong
    (`12+35=48, 48-7=41; -7+35=28, 28+12=40; 41-40=1`: an honest check of a wrong fold)."""
    expression = _expression(prompt)
    steps, sep, written_check = response.split("####")[0].partition(CHECK_START)
    ends = re.findall(r"=(-?\d+)", steps)
    if expression is None or not sep or not ends:
        return False
    return _squash(written_check) == _squash(check_text(*expression, int(ends[-1]), kind))


def listed_choices(prompt: str) -> list[str]:
    """The candidate answers that lead a prompt (`40;-13;61;7:12+35-7=`), [] without a list."""
    m = _CHOICES.match(prompt.strip())
    return m[0].rstrip(CHOICES_END).split(";") if m else []


def response_features(
    prompts: list[str], responses: list[str], check: str, choices: int
) -> dict[str, list[bool]]:
    """What a task's options make visible in each response, one boolean per response and feature:
    with a `check`, `check_agrees` (the check ends where the forward steps did; for 'split', the
    written difference is 0) and `check_honest` (the check is the one the task writes for the
    response's own steps, right or wrong); with `choices`, `answer_listed` (the final answer is one
    of the prompt's candidates). Study tools read these by name, so a new task option adds its
    features here and nowhere else."""
    out: dict[str, list[bool]] = {}
    if check != "none":
        out["check_agrees"] = [check_agrees(r, check) for r in responses]
        pairs = zip(prompts, responses, strict=True)
        out["check_honest"] = [check_right_for_its_steps(p, r, check) for p, r in pairs]
    if choices:
        pairs = zip(prompts, responses, strict=True)
        out["answer_listed"] = [extract_answer(r) in listed_choices(p) for p, r in pairs]
    return out


class ArithmeticVerifier:
    """Callable like `Verifier`: 0/1 rewards, 1 only for a fully correct worked solution (its
    self-check, when `check_kind` names one, scored only when `score_check` names it too)."""

    def __init__(
        self,
        check_kind: str = "none",
        score_check: str = "none",
        check_credit: float = RewardConfig.check_credit,
        credit_for: str = RewardConfig.credit_for,
    ):
        self.check_kind, self.score_check, self.check_credit = check_kind, score_check, check_credit
        self.credit_for = credit_for
        self.self_check = check_kind != "none"  # solutions end with a check (the task's `check`)

    def __call__(self, responses: list[str], answers: list[str], prompts: list[str]) -> torch.Tensor:
        rewards = [
            float(worked_solution_correct(p, r, a, self.self_check, self.score_check))
            for r, a, p in zip(responses, answers, prompts, strict=True)
        ]
        return torch.tensor(rewards)

    def training_rewards(self, responses: list[str], prompts: list[str], rewards: torch.Tensor):
        """The rewards the advantages use: `rewards`, and `check_credit` for a rejected response
        whose check is right for its own steps (`credit_for="honest"`,
        `check_right_for_its_steps`) or whose wrong forward steps end in a nonzero difference
        (`"flagged"`, `flags_its_wrong_fold`)."""
        if not self.check_credit:
            return rewards
        pairs = zip(prompts, responses, strict=True)
        if self.credit_for == "flagged":
            earns = [flags_its_wrong_fold(p, r) for p, r in pairs]
        else:
            earns = [check_right_for_its_steps(p, r, self.check_kind) for p, r in pairs]
        credit = self.check_credit * torch.tensor(earns).to(rewards)
        return torch.where(rewards > 0.5, rewards, credit)

"""The embedded default task: short arithmetic chains with worked solutions, generated offline.

A problem is `a op b op c ...` with operands in [1, max_operand] and ops in `ops`. The prompt is the
expression followed by `=`; the worked solution folds it left to right, one step per clause, and ends
with `#### <answer>` (the GSM8K convention), which the verifier extracts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

ANSWER_MARKER = "####"


@dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: the prompt text, its worked solution and the final answer."""

    prompt: str
    solution: str
    answer: str


def apply_op(op: str, a: int, b: int) -> int:
    """`a op b` for the task's operators."""
    match op:
        case "+":
            return a + b
        case "-":
            return a - b
        case "*":
            return a * b
        case _:
            raise ValueError(f"unsupported operator {op!r}; use some of '+', '-', '*'")


def make_problem(operands: list[int], ops: list[str]) -> ArithmeticProblem:
    """Build the prompt, worked solution and answer for `operands[0] ops[0] operands[1] ...`."""
    expr = str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:], strict=True))
    acc, steps = operands[0], []
    for op, x in zip(ops, operands[1:], strict=True):
        new = apply_op(op, acc, x)
        steps.append(f"{acc}{op}{x}={new}")
        acc = new
    solution = ", ".join(steps) + f" {ANSWER_MARKER} {acc}"
    return ArithmeticProblem(prompt=f"{expr}=", solution=solution, answer=str(acc))


def _sample_problems(
    n: int, num_operands: int, max_operand: int, ops: str, rng: random.Random
) -> list[ArithmeticProblem]:
    """Draw `n` distinct problems (distinct prompts) with a seeded RNG."""
    space = max_operand**num_operands * len(ops) ** (num_operands - 1)
    if n > space:
        raise ValueError(
            f"data: asked for {n} distinct problems but only {space} exist with "
            f"num_operands={num_operands}, max_operand={max_operand}, ops={ops!r}; "
            "lower train_size/eval_size or widen the task"
        )
    seen: dict[str, ArithmeticProblem] = {}
    while len(seen) < n:
        operands = [rng.randint(1, max_operand) for _ in range(num_operands)]
        chosen = [rng.choice(ops) for _ in range(num_operands - 1)]
        p = make_problem(operands, chosen)
        seen.setdefault(p.prompt, p)
    return list(seen.values())


def arithmetic_dataset(
    train_size: int = 20000,
    eval_size: int = 1024,
    num_operands: int = 3,
    max_operand: int = 40,
    ops: str = "+-",
    seed: int = 0,
) -> DatasetDict:
    """Deterministic train / held-out eval splits (no prompt appears in both).

    Columns: `prompt`, `solution` (worked, for the supervised warm-up) and `answer`.
    """
    problems = _sample_problems(train_size + eval_size, num_operands, max_operand, ops, random.Random(seed))

    def to_dataset(items: list[ArithmeticProblem]) -> Dataset:
        return Dataset.from_dict(
            {
                "prompt": [p.prompt for p in items],
                "solution": [p.solution for p in items],
                "answer": [p.answer for p in items],
            }
        )

    return DatasetDict(train=to_dataset(problems[eval_size:]), eval=to_dataset(problems[:eval_size]))

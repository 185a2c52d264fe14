"""The embedded default task: short arithmetic chains with worked solutions, generated offline.

A problem is `a op b op c ...` with operands in [1, max_operand] and ops in `ops`. The prompt is the
expression followed by `=`; the worked solution folds it left to right, one step per clause, and ends
with `#### <answer>` (the GSM8K convention), which the verifier extracts.

With `check="reverse"` (ops `+` and `-` only) the solution goes on to check itself: it adds the
signed terms again in reverse order and ends where the fold ended when the steps were right
(`12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40`). A fraction `check_errors` of the training rows
teach the check on forward steps that hold one error carried forward, given as context without
loss (column `given`), so the check must be computed, not copied from the fold's result; the
row's `solution` is then the check and `#### <the fold's wrong answer>`, a right check that
disagrees with the fold. With `check_verdicts` (two characters, e.g. `yn`) every warm-up row also
ends, after its EOS, with a verdict: the first for right steps, the second for a practice row. The
policy never samples past EOS; the verdict teaches the network to compare the check with the
fold at the position where LaSeR reads its score.

With `check="difference"` the check is followed by the steps' result minus the check's
(`...; -7+35=28, 28+12=40; 40-40=0 #### 40`): a response whose check disagrees with its steps ends
with a nonzero difference, a token or two before EOS, where LaSeR reads its score.

With `check="split"` the check cannot reuse a value the steps wrote: it adds the signed terms after
the first one from the last back (`-7+35=28`), then subtracts the first operand from the steps'
result and the check's result from that (`40-12=28, 28-28=0`), so the solution is
`12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40`. The check's result is not the answer,
so the check cannot end by copying the steps' result; a response whose steps went wrong, checked
honestly, ends with a nonzero difference (`41-12=29, 29-28=1`).

With `choices` > 0 the prompt first lists that many candidate answers, the right one among
distractors drawn uniformly from the answers the task can have (`40;-13;61;7:12+35-7=`). The
solution is the same; the list makes a wrong final answer cheap to spot (is it one of the listed
numbers?) while computing the right one costs as much as before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

from laser.configs import ArithmeticTaskConfig

ANSWER_MARKER = "####"
CHOICES_END = ":"  # ends the list of candidate answers that starts a prompt
CHECK_START = ";"  # ends the worked steps of a solution that checks itself
CHECK_OFFSETS = (-10, -2, -1, 1, 2, 10)  # the error a practice row's forward steps hold


@dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: the prompt text, its worked solution and the final answer, and the operands
    and operators it was built from."""

    prompt: str
    solution: str
    answer: str
    operands: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()


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


def fold_steps(operands: list[int], ops: list[str], error: tuple[int, int] | None = None) -> tuple[str, int]:
    """The worked steps `a op b=r, ...` and the result; `error=(i, d)` adds d to step i's result
    and carries it forward (the later steps are right given the wrong value)."""
    acc, steps = operands[0], []
    for i, (op, x) in enumerate(zip(ops, operands[1:], strict=True)):
        new = apply_op(op, acc, x) + (error[1] if error and error[0] == i else 0)
        steps.append(f"{acc}{op}{x}={new}")
        acc = new
    return ", ".join(steps), acc


def check_steps(operands: list[int], ops: list[str], skip_first: bool = False) -> tuple[str, int]:
    """The signed terms added again from the last one back (`12+35-7`: `-7+35=28, 28+12=40`), and
    the check's result; with `skip_first`, the terms after the first one only (`-7+35=28`)."""
    terms = [operands[0]] + [x if op == "+" else -x for op, x in zip(ops, operands[1:], strict=True)]
    terms = terms[1:] if skip_first else terms
    acc, steps = terms[-1], []
    for t in reversed(terms[:-1]):
        steps.append(f"{acc}{'+' if t >= 0 else '-'}{abs(t)}={acc + t}")
        acc += t
    return ", ".join(steps), acc


def difference_step(steps_result: int, check_result: int) -> str:
    """`a-b=d`: the steps' result minus the check's (`40-40=0`; `41+3=44` for a check of -3)."""
    sign = "-" if check_result >= 0 else "+"
    return f"{steps_result}{sign}{abs(check_result)}={steps_result - check_result}"


def check_text(operands: list[int], ops: list[str], steps_result: int, check: str) -> str:
    """What follows the forward steps' `;`: the reverse check and, with "difference", the steps'
    result minus the check's after a second `;`; with "split", the check of the terms after the
    first and, after a second `;`, the steps' result minus the first operand minus the check's
    (`-7+35=28; 40-12=28, 28-28=0`)."""
    text, check_result = check_steps(operands, ops, skip_first=check == "split")
    if check == "difference":
        text += f"{CHECK_START} {difference_step(steps_result, check_result)}"
    if check == "split":
        head = difference_step(steps_result, operands[0])  # operands are >= 1: `a-b=d`
        text += f"{CHECK_START} {head}, {difference_step(steps_result - operands[0], check_result)}"
    return text


def make_problem(
    operands: list[int], ops: list[str], choices: list[int] | None = None, check: str = "none"
) -> ArithmeticProblem:
    """Build the prompt, worked solution and answer for `operands[0] ops[0] operands[1] ...`, the
    prompt led by the candidate answers `choices` when given, the solution checking itself with
    `check="reverse"` or `"difference"`."""
    expr = str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:], strict=True))
    steps, acc = fold_steps(operands, ops)
    if check != "none":
        steps += f"{CHECK_START} {check_text(operands, ops, acc, check)}"
    solution = f"{steps} {ANSWER_MARKER} {acc}"
    listed = "" if not choices else ";".join(map(str, choices)) + CHOICES_END
    return ArithmeticProblem(f"{listed}{expr}=", solution, str(acc), tuple(operands), tuple(ops))


def answer_range(num_operands: int, max_operand: int, ops: str) -> tuple[int, int]:
    """The smallest and largest answers of the task's expressions (operands in [1, max_operand]);
    with `*` a looser pair of bounds."""
    n, m = num_operands, max_operand
    if "*" in ops:
        hi = m**n
        return (1 - hi if "-" in ops else 1), hi
    lo = 1 - (n - 1) * m if "-" in ops else n
    hi = n * m if "+" in ops else m - (n - 1)
    return lo, hi


def draw_choices(answer: int, n: int, bounds: tuple[int, int], rng: random.Random) -> list[int]:
    """`answer` and n - 1 distinct distractors drawn uniformly from `bounds`, in random order."""
    lo, hi = bounds
    picked = {answer}
    while len(picked) < n:
        picked.add(rng.randint(lo, hi))
    out = sorted(picked)
    rng.shuffle(out)
    return out


def practice_row(
    operands: list[int], ops: list[str], rng: random.Random, check: str = "reverse"
) -> tuple[str, str]:
    """(given, solution) of a check-practice row: forward steps with one error carried forward
    (context without loss), then the right check (and difference) and the fold's wrong answer."""
    error = (rng.randrange(len(ops)), rng.choice(CHECK_OFFSETS))
    steps, acc = fold_steps(operands, ops, error)
    return f"{steps}{CHECK_START}", f" {check_text(operands, ops, acc, check)} {ANSWER_MARKER} {acc}"


def _sample_problems(
    n: int, num_operands: int, max_operand: int, ops: str, rng: random.Random, choices: int = 0,
    check: str = "none",
) -> list[ArithmeticProblem]:  # fmt: skip
    """Draw `n` distinct problems (distinct expressions) with a seeded RNG."""
    space = max_operand**num_operands * len(ops) ** (num_operands - 1)
    if n > space:
        raise ValueError(
            f"data: asked for {n} distinct problems but only {space} exist with "
            f"num_operands={num_operands}, max_operand={max_operand}, ops={ops!r}; "
            "lower train_size/eval_size or widen the task"
        )
    bounds = answer_range(num_operands, max_operand, ops)
    _check_choices(choices, bounds)
    seen: dict[str, ArithmeticProblem] = {}
    while len(seen) < n:
        operands = [rng.randint(1, max_operand) for _ in range(num_operands)]
        chosen = [rng.choice(ops) for _ in range(num_operands - 1)]
        p = make_problem(operands, chosen)
        if p.prompt in seen:
            continue
        listed = draw_choices(int(p.answer), choices, bounds, rng) if choices else None
        p = make_problem(operands, chosen, listed, check)
        seen[p.prompt.split(CHOICES_END)[-1]] = p
    return list(seen.values())


def _check_choices(choices: int, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if choices > hi - lo + 1:  # choices >= 0 is `ArithmeticTaskConfig`'s rule
        raise ValueError(
            f"data.task.choices={choices} is invalid: use 0 (no list) or at most {hi - lo + 1}, "
            "the number of answers the task can have"
        )


def arithmetic_dataset(**settings) -> DatasetDict:
    """Deterministic train / held-out eval splits (no expression appears in both) of the task the
    `settings` describe: the fields of `ArithmeticTaskConfig` (`data.task`), whose defaults and
    rules they take (a bad one raises).

    Columns: `prompt`, `solution` (worked, for the supervised warm-up) and `answer`; with
    `check_errors` > 0 also `given` (context of the warm-up's target, without loss; "" on most rows)
    and, with two `check_verdicts` characters, `verdict`: the first on rows whose steps are right,
    the second on practice rows (the warm-up writes it after EOS).
    """
    task = ArithmeticTaskConfig(**settings)
    rng = random.Random(task.seed)
    args = (task.train_size + task.eval_size, task.num_operands, task.max_operand, task.ops, rng)
    problems = _sample_problems(*args, task.choices, task.check)

    def to_dataset(items: list[ArithmeticProblem], practice: float = 0.0) -> Dataset:
        columns = {
            "prompt": [p.prompt for p in items],
            "solution": [p.solution for p in items],
            "answer": [p.answer for p in items],
        }
        if practice:
            add_practice_rows(columns, items, practice, random.Random(task.seed + 1), task.check)
            if task.check_verdicts:
                columns["verdict"] = [task.check_verdicts[bool(g)] for g in columns["given"]]
        return Dataset.from_dict(columns)

    train = to_dataset(problems[task.eval_size :], task.check_errors)
    return DatasetDict(train=train, eval=to_dataset(problems[: task.eval_size]))


def add_practice_rows(
    columns: dict[str, list[str]],
    problems: list[ArithmeticProblem],
    frac: float,
    rng: random.Random,
    check: str = "reverse",
) -> None:
    """Make a `frac` share of the rows (those of `problems`) check-practice rows (`practice_row`),
    in place."""
    given = [""] * len(problems)
    for i in rng.sample(range(len(given)), round(frac * len(given))):
        p = problems[i]
        given[i], columns["solution"][i] = practice_row(list(p.operands), list(p.ops), rng, check)
    columns["given"] = given

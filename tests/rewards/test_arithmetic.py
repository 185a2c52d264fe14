"""The arithmetic task's verifier rewards a worked solution only when every step is right."""

from __future__ import annotations

import pytest

from laser.data.arithmetic import arithmetic_dataset
from laser.rewards.arithmetic import ArithmeticVerifier, worked_solution_correct


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("38+1=39, 39-32=7 #### 7", True),
        ("38+1=38, 38-32=7 #### 7", False),  # two wrong steps whose errors cancel
        ("38+1=39, 39-32=7 #### 6", False),  # wrong final answer
        ("38+1=39, 39+32=7 #### 7", False),  # wrong operator
        ("38+1=39, 40-32=8 #### 7", False),  # not chained
        ("38+1=39 #### 7", False),  # a step missing
        ("7 #### 7", False),
        ("38+1=39,39-32=7####7", True),  # spacing is free
    ],
)
def test_steps_must_be_correct(response: str, expected: bool) -> None:
    assert worked_solution_correct("38+1-32=", response, "7") is expected


def test_every_reference_solution_is_correct_and_a_shuffle_is_not() -> None:
    data = arithmetic_dataset(train_size=200, eval_size=10, ops="+-*")["train"]
    verifier = ArithmeticVerifier()
    assert verifier(data["solution"], data["answer"], data["prompt"]).tolist() == [1.0] * len(data)
    shifted = data["solution"][1:] + data["solution"][:1]
    assert verifier(shifted, data["answer"], data["prompt"]).sum() < 5


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("36-31=5, 5+29=34 #### 34", True),
        ("36-31=5, 5+29=35 #### 35", False),  # a listed distractor is still wrong
        ("36-31=6, 6+29=34 #### 34", False),
    ],
)
def test_a_list_of_choices_before_the_expression_is_skipped(response: str, expected: bool) -> None:
    assert worked_solution_correct("87;35;34;21:36-31+29=", response, "34") is expected
    assert worked_solution_correct("36-31+29=", response, "34") is expected

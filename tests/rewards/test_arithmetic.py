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


def test_response_features_are_what_the_tasks_options_make_visible() -> None:
    from laser.rewards.arithmetic import response_features

    honest = "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40"
    wrong_check = "12+35=47, 47-7=40; -7+35=29; 40-12=28, 28-29=-1 #### 40"
    prompts = ["12+35-7=", "12+35-7="]
    features = response_features(prompts, [honest, wrong_check], check="split", choices=0)
    assert features == {"check_agrees": [True, False], "check_honest": [True, False]}
    listed = response_features(["40;-13;61;7:12+35-7="] * 2, ["... #### 40", "... #### 41"], "none", 4)
    assert listed == {"answer_listed": [True, False]}
    assert response_features(prompts, [honest, honest], check="none", choices=0) == {}

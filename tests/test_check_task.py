"""The self-checking arithmetic solutions (`data.task.check`) and their check-practice warm-up rows."""

from __future__ import annotations

import re

import pytest
import torch

from laser.configs import ArithmeticTaskConfig, RewardConfig
from laser.data.arithmetic import arithmetic_dataset, check_steps, fold_steps, make_problem
from laser.models.base_policy import sft_batch, solution_nll
from laser.rewards import make_verifier
from laser.rewards.arithmetic import worked_solution_correct
from laser.rollout.logprobs import sequence_logprobs

from helpers import char_tokenizer, tiny_model


def test_the_check_adds_the_signed_terms_back_from_the_last() -> None:
    p = make_problem([12, 35, 7], ["+", "-"], check="reverse")
    assert p.solution == "12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40"
    assert check_steps([6, 26, 1], ["-", "-"]) == "-1-26=-27, -27+6=-21"


def test_an_error_is_carried_forward_by_the_later_steps() -> None:
    assert fold_steps([12, 35, 7], ["+", "-"], error=(0, 1)) == ("12+35=48, 48-7=41", 41)
    assert fold_steps([12, 35, 7], ["+", "-"], error=(1, -10)) == ("12+35=47, 47-7=30", 30)


def test_the_verifier_scores_the_steps_and_answer_not_the_check() -> None:
    def right(response: str, self_check: bool = True) -> bool:
        return worked_solution_correct("12+35-7=", response, "40", self_check=self_check)

    assert right("12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40")
    assert right("12+35=47, 47-7=40; -7+35=29, 29+12=41 #### 40")
    assert not right("12+35=48, 48-7=41; -7+35=28, 28+12=40 #### 41")
    # the plain task's verifier keeps failing a response with anything after its steps
    assert not right("12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40", self_check=False)
    assert right("12+35=47, 47-7=40 #### 40", self_check=False)


def test_the_verifier_follows_the_task_config() -> None:
    response, prompt = ["12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40"], ["12+35-7="]
    checked = make_verifier(RewardConfig(kind="arithmetic_steps"), ArithmeticTaskConfig(check="reverse"))
    assert checked(response, ["40"], prompt).tolist() == [1.0]
    assert make_verifier(RewardConfig(kind="arithmetic_steps"), ArithmeticTaskConfig())(
        response, ["40"], prompt
    ).tolist() == [0.0]


def test_practice_rows_hold_one_carried_error_before_a_right_check() -> None:
    data = arithmetic_dataset(train_size=400, eval_size=50, check="reverse", check_errors=0.25)
    train = data["train"].to_list()
    practice = [r for r in train if r["given"]]
    assert len(practice) == 100 and "given" not in data["eval"].column_names
    for r in practice:
        expr = r["prompt"].rstrip("=")
        terms = [int(t) for t in re.findall(r"[+-]?\d+", expr)]
        steps = r["given"].rstrip(";").split(", ")
        results = [int(s.split("=")[1]) for s in steps]
        assert results[-1] != int(r["answer"])  # the fold ends wrong ...
        assert r["solution"].endswith(f"#### {results[-1]}")  # ... and the row's answer is the fold's
        check = r["solution"].split(" #### ")[0].strip()
        assert check == check_steps([terms[0]] + [abs(t) for t in terms[1:]], re.findall(r"[+-]", expr[1:]))
        assert int(check.split("=")[-1]) == sum(terms)  # a right check that disagrees with the fold
        assert not worked_solution_correct(
            r["prompt"], r["given"] + r["solution"], r["answer"], self_check=True
        )
    clean = [r for r in train if not r["given"]]
    assert all(
        worked_solution_correct(r["prompt"], r["solution"], r["answer"], self_check=True) for r in clean
    )


def test_the_plain_task_is_unchanged_and_bad_settings_are_rejected() -> None:
    plain = arithmetic_dataset(train_size=50, eval_size=10)
    with_check = arithmetic_dataset(train_size=50, eval_size=10, check="reverse")
    assert plain["train"]["prompt"] == with_check["train"]["prompt"]
    assert "given" not in plain["train"].column_names
    with pytest.raises(ValueError, match=r"data\.task\.check=.* needs ops"):
        ArithmeticTaskConfig(ops="+*", check="reverse")
    with pytest.raises(ValueError, match=r"data\.task\.check_errors=0\.2 is invalid"):
        ArithmeticTaskConfig(check_errors=0.2)


def test_the_warm_up_loss_leaves_the_given_context_out() -> None:
    tok, model = char_tokenizer(), tiny_model()
    prompts, given, solutions = ["1+2=", "3-1="], ["1+2=4;", ""], [" 2+1=3 #### 4", "3-1=2 #### 2"]
    with torch.no_grad():
        loss = solution_nll(model, tok, prompts, solutions, given)
        batch = sft_batch(tok, prompts, [g + s for g, s in zip(given, solutions, strict=True)])
        logp = sequence_logprobs(model, batch, None).logp
    skip = len(given[0])  # one token per character
    n0, n1 = int(batch.response_mask[0].sum()), int(batch.response_mask[1].sum())
    expected = -(logp[0, skip:n0].sum() + logp[1, :n1].sum()) / (n0 - skip + n1)
    assert torch.allclose(loss, expected)
    assert torch.allclose(
        solution_nll(model, tok, prompts, solutions, ["", ""]), solution_nll(model, tok, prompts, solutions)
    )


def test_verdicts_mark_right_rows_and_practice_rows() -> None:
    data = arithmetic_dataset(
        train_size=200, eval_size=20, check="reverse", check_errors=0.25, check_verdicts="yn"
    )
    train = data["train"].to_list()
    assert {r["verdict"] for r in train if r["given"]} == {"n"}
    assert {r["verdict"] for r in train if not r["given"]} == {"y"}
    assert "verdict" not in data["eval"].column_names
    with pytest.raises(ValueError, match=r"data\.task\.check_verdicts='y' is invalid"):
        ArithmeticTaskConfig(check="reverse", check_errors=0.25, check_verdicts="y")
    with pytest.raises(ValueError, match=r"data\.task\.check_verdicts='yn' is invalid"):
        ArithmeticTaskConfig(check="reverse", check_verdicts="yn")


def test_the_verdict_follows_eos_inside_the_loss() -> None:
    tok, model = char_tokenizer(), tiny_model()
    prompts, solutions, verdicts = ["1+2="], ["1+2=3 #### 3"], ["y"]
    batch = sft_batch(tok, prompts, solutions, verdicts)
    ids = batch.response_ids[0].tolist()
    assert ids[-2:] == [tok.eos_token_id, tok.convert_tokens_to_ids("y")]
    assert batch.response_mask[0].sum() == len(solutions[0]) + 2
    with torch.no_grad():
        logp = sequence_logprobs(model, batch, None).logp[0]
        expected = -logp.sum() / (len(solutions[0]) + 2)
        assert torch.allclose(solution_nll(model, tok, prompts, solutions, None, verdicts), expected)

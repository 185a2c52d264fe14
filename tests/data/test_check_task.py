"""The self-checking arithmetic solutions (`data.task.check`) and their check-practice warm-up rows."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest
import torch

from laser.configs import ArithmeticTaskConfig, RewardConfig, validate
from laser.data.arithmetic import (
    ANSWER_MARKER,
    CHECK_OFFSETS,
    CHECK_START,
    arithmetic_dataset,
    check_steps,
    difference_step,
    fold_steps,
    make_problem,
)
from laser.models.base_policy import config_key, sft_batch, solution_nll
from laser.models.factory import make_base_policy, warmup_key
from laser.rewards import make_verifier
from laser.rewards.arithmetic import (
    check_agrees,
    check_right_for_its_steps,
    listed_choices,
    worked_solution_correct,
    written_difference,
)
from laser.rollout.logprobs import sequence_logprobs

from helpers import char_tokenizer, compose_train, config_block, tiny_model


def test_the_check_adds_the_signed_terms_back_from_the_last() -> None:
    p = make_problem([12, 35, 7], ["+", "-"], check="reverse")
    assert p.solution == "12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40"
    assert check_steps([6, 26, 1], ["-", "-"]) == ("-1-26=-27, -27+6=-21", -21)


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
        operands, ops = [terms[0]] + [abs(t) for t in terms[1:]], re.findall(r"[+-]", expr[1:])
        assert (check, sum(terms)) == check_steps(operands, ops)
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
    with pytest.raises(ValueError, match=r"data\.task\.check_errors=0\.2 is invalid"):
        arithmetic_dataset(train_size=50, eval_size=10, check_errors=0.2)  # the config's rules


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


def test_a_weighted_verdict_counts_as_that_many_solution_tokens() -> None:
    tok, model = char_tokenizer(), tiny_model()
    prompts, given, solutions, verdicts = (
        ["1+2=", "3-1="],
        ["1+2=4;", ""],
        [" 2+1=3 #### 4", "3-1=2 #### 2"],
        ["n", "y"],
    )
    texts = [g + s for g, s in zip(given, solutions, strict=True)]
    with torch.no_grad():
        logp = sequence_logprobs(model, sft_batch(tok, prompts, texts, verdicts), None).logp
        loss = solution_nll(model, tok, prompts, solutions, given, verdicts, after_eos_weight=5.0)
    ends = [len(t) + 1 for t in texts]  # one token per character, then EOS; the verdict follows
    solution_part = logp[0, len(given[0]) : ends[0]].sum() + logp[1, : ends[1]].sum()
    verdict_part = logp[0, ends[0]] + logp[1, ends[1]]
    count = (ends[0] - len(given[0])) + ends[1]
    expected = -(solution_part + 5.0 * verdict_part) / (count + 2 * 5.0)
    assert torch.allclose(loss, expected)
    unweighted = solution_nll(model, tok, prompts, solutions, given, verdicts)
    assert torch.allclose(solution_nll(model, tok, prompts, solutions, given, verdicts, 1.0), unweighted)
    assert not torch.allclose(loss, unweighted)


def test_the_verdict_weight_keeps_the_warm_up_key_until_it_is_used() -> None:
    tok = char_tokenizer()
    model = config_block("model", base_sft={"steps": 0})
    key = warmup_key(model, tok, {"task": 1}, 0)
    sft = model.base_sft  # the key from before verdict_weight and seed, final_lr_ratio then final_lr_frac
    old_sft = {"steps": 0, "lr": sft.lr, "final_lr_frac": sft.final_lr_ratio, "batch_size": sft.batch_size}
    old = {"name_or_path": None, "dtype": "float32", "tiny": asdict(model.tiny), "base_sft": old_sft}
    assert key == config_key({"model": old, "task": {"task": 1}, "vocab": tok.get_vocab(), "seed": 0})
    weighted = config_block("model", base_sft={"steps": 0, "verdict_weight": 30.0})
    assert warmup_key(weighted, tok, {"task": 1}, 0) != key


def test_a_fixed_warm_up_seed_gives_one_base_policy_to_runs_of_any_seed(tmp_path) -> None:
    tok = char_tokenizer()
    fixed = config_block("model", base_sft={"steps": 0, "seed": 0})
    free = config_block("model", base_sft={"steps": 0})
    assert warmup_key(fixed, tok, {"task": 1}, 0) == warmup_key(free, tok, {"task": 1}, 0)
    weights = {
        (name, run_seed): next(make_base_policy(cfg, tok, None, {}, tmp_path, run_seed).parameters())
        for name, cfg in (("fixed", fixed), ("free", free))
        for run_seed in (0, 1)
    }  # steps=0: the initialised model, seeded like the warm-up
    assert torch.equal(weights["fixed", 0], weights["fixed", 1])
    assert torch.equal(weights["fixed", 0], weights["free", 0])
    assert not torch.equal(weights["free", 0], weights["free", 1])


def test_check_agreement_compares_the_check_with_the_forward_steps() -> None:
    assert check_agrees("12+35=47, 47-7=40; -7+35=28, 28+12=40 #### 40")
    assert not check_agrees("12+35=47, 47-7=41; -7+35=28, 28+12=40 #### 41")
    assert not check_agrees("12+35=47, 47-7=40 #### 40")  # no check
    assert listed_choices("40;-13;61;7:12+35-7=") == ["40", "-13", "61", "7"]
    assert listed_choices("12+35-7=") == []


def test_the_difference_check_ends_in_zero_exactly_when_the_steps_are_right() -> None:
    assert difference_step(40, 40) == "40-40=0" and difference_step(41, -3) == "41+3=44"
    p = make_problem([12, 35, 7], ["+", "-"], check="difference")
    assert p.solution == "12+35=47, 47-7=40; -7+35=28, 28+12=40; 40-40=0 #### 40"
    data = arithmetic_dataset(train_size=400, eval_size=20, check="difference", check_errors=0.25)
    train = data["train"].to_list()
    for r in train:
        diff = int(r["solution"].split(ANSWER_MARKER)[0].split(CHECK_START)[-1].split("=")[-1])
        if r["given"]:  # the forward steps' carried error is the difference
            assert diff in CHECK_OFFSETS and not check_agrees(r["given"] + r["solution"])
        else:
            assert diff == 0 and check_agrees(r["solution"])
            assert worked_solution_correct(r["prompt"], r["solution"], r["answer"], self_check=True)
    assert 0.2 < sum(bool(r["given"]) for r in train) / len(train) < 0.3


def test_a_scored_check_must_be_the_right_check(tmp_path) -> None:
    right = "12+35=47, 47-7=40; -7+35=28, 28+12=40; 40-40=0 #### 40"
    wrong_check = right.replace("28+12=40;", "28+12=41;")
    wrong_difference = right.replace("40-40=0", "40-40=1")
    for response, scored in ((right, True), (wrong_check, False), (wrong_difference, False)):
        assert worked_solution_correct("12+35-7=", response, "40", True, "difference") == scored
        assert worked_solution_correct("12+35-7=", response, "40", True)  # unscored: the steps only
    assert not worked_solution_correct("12+35-7=", right, "40", True, "reverse")  # not the task's check
    task = ArithmeticTaskConfig(check="difference", check_errors=0.25)
    verifier = make_verifier(RewardConfig(kind="arithmetic_steps", score_check=True), task)
    assert verifier([right, wrong_check], ["40", "40"], ["12+35-7="] * 2).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"reward\.score_check=True is invalid"):
        validate(compose_train(tmp_path, ["reward.score_check=true"], debug=None))


def test_a_check_credit_pays_an_honest_check_of_a_wrong_fold_only(tmp_path) -> None:
    right = "12+35=47, 47-7=40; -7+35=28, 28+12=40; 40-40=0 #### 40"
    honest = "12+35=48, 48-7=41; -7+35=28, 28+12=40; 41-40=1 #### 41"  # the check disagrees
    bent = "12+35=48, 48-7=41; -7+35=28, 28+12=41; 41-41=0 #### 41"  # made to agree: 28+12=41
    no_check = "12+35=48, 48-7=41 #### 41"
    responses, prompts = [right, honest, bent, no_check], ["12+35-7="] * 4
    honest_checks = [check_right_for_its_steps("12+35-7=", r, "difference") for r in responses]
    assert honest_checks == [True, True, False, False]
    assert not check_right_for_its_steps("12+35-7=", honest, "reverse")  # the difference is not that check's
    task = ArithmeticTaskConfig(check="difference", check_errors=0.25)
    verifier = make_verifier(RewardConfig(kind="arithmetic_steps", score_check=True, check_credit=0.25), task)
    rewards = verifier(responses, ["40"] * 4, prompts)
    assert rewards.tolist() == [1.0, 0.0, 0.0, 0.0]  # the verifier's 0/1 are unchanged
    assert verifier.training_rewards(responses, prompts, rewards).tolist() == [1.0, 0.25, 0.0, 0.0]
    off = make_verifier(RewardConfig(kind="arithmetic_steps", score_check=True), task)
    assert off.training_rewards(responses, prompts, rewards) is rewards
    for overrides, match in (
        (["reward.check_credit=0.5"], r"reward\.check_credit=0\.5 is invalid.*data\.task\.check"),
        (["+experiment=check_difference", "reward.check_credit=1.0"], r"reward\.check_credit=1\.0"),
    ):
        with pytest.raises(ValueError, match=match):
            validate(compose_train(tmp_path, overrides, debug=None))


def test_the_split_check_never_ends_at_the_answer() -> None:
    p = make_problem([12, 35, 7], ["+", "-"], check="split")
    assert p.solution == "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40"
    assert check_steps([12, 35, 7], ["+", "-"], skip_first=True) == ("-7+35=28", 28)
    four = make_problem([5, 9, 30, 2], ["-", "+", "-"], check="split").solution
    assert four == "5-9=-4, -4+30=26, 26-2=24; -2+30=28, 28-9=19; 24-5=19, 19-19=0 #### 24"
    with pytest.raises(ValueError, match=r"'split' needs num_operands >= 3"):
        ArithmeticTaskConfig(check="split", num_operands=2)


def test_a_split_check_bent_to_agree_takes_a_wrong_step_of_its_own() -> None:
    prompt, kind = "12+35-7=", "split"
    right = "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40"
    honest = "12+35=48, 48-7=41; -7+35=28; 41-12=29, 29-28=1 #### 41"
    bent = "12+35=48, 48-7=41; -7+35=28; 41-12=28, 28-28=0 #### 41"  # 41-12=28 is wrong
    wrong_check = "12+35=47, 47-7=40; -7+35=29; 40-12=28, 28-29=-1 #### 40"
    responses = [right, honest, bent, wrong_check]
    assert [check_agrees(r, kind) for r in responses] == [True, False, True, False]
    assert [check_right_for_its_steps(prompt, r, kind) for r in responses] == [True, True, False, False]
    task = ArithmeticTaskConfig(check=kind, check_errors=0.25)
    verifier = make_verifier(RewardConfig(kind="arithmetic_steps", score_check=True, check_credit=0.5), task)
    rewards = verifier(responses, ["40"] * 4, [prompt] * 4)
    assert rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert verifier.training_rewards(responses, [prompt] * 4, rewards).tolist() == [1.0, 0.5, 0.0, 0.0]
    unscored = make_verifier(RewardConfig(kind="arithmetic_steps"), task)
    assert unscored(responses, ["40"] * 4, [prompt] * 4).tolist() == [1.0, 0.0, 0.0, 1.0]


def test_split_practice_rows_check_the_wrong_fold_honestly() -> None:
    data = arithmetic_dataset(train_size=400, eval_size=8, check="split", check_errors=0.5)["train"]
    rows = [r for r in data if r["given"]]
    assert len(rows) == 200
    for r in rows:
        response = r["given"] + r["solution"]
        assert check_right_for_its_steps(r["prompt"], response, "split")
        assert not check_agrees(response, "split")  # one error carried forward: nonzero difference


def test_a_flagged_credit_pays_a_wrong_fold_that_ends_in_a_nonzero_difference(tmp_path) -> None:
    prompt = "12+35-7="
    right = "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40"
    honest = "12+35=48, 48-7=41; -7+35=28; 41-12=29, 29-28=1 #### 41"
    flagged = "12+35=48, 48-7=41; -7+35=29; 41-12=29, 29-29=5 #### 41"  # wrong check, still nonzero
    bent = "12+35=48, 48-7=41; -7+35=28; 41-12=28, 28-28=0 #### 41"
    no_difference = "12+35=48, 48-7=41; -7+35=28 #### 41"
    hedged = "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=3 #### 40"  # right steps: no credit
    responses = [right, honest, flagged, bent, no_difference, hedged]
    assert [written_difference(r) for r in responses] == [0, 1, 5, 0, None, 3]
    task = ArithmeticTaskConfig(check="split", check_errors=0.25)
    reward = RewardConfig(kind="arithmetic_steps", score_check=True, check_credit=0.5, credit_for="flagged")
    verifier = make_verifier(reward, task)
    prompts = [prompt] * len(responses)
    rewards = verifier(responses, ["40"] * len(responses), prompts)
    assert rewards.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    credited = verifier.training_rewards(responses, prompts, rewards)
    assert credited.tolist() == [1.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    honest_only = make_verifier(
        RewardConfig(kind="arithmetic_steps", score_check=True, check_credit=0.5), task
    )
    credited_honest = honest_only.training_rewards(responses, prompts, rewards)
    assert credited_honest.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    for overrides, match in (
        (["+experiment=self_check", "reward.credit_for=flagged"], r"reward\.credit_for='flagged'.*split"),
        (["+experiment=showcase", "reward.credit_for=any"], r"reward\.credit_for"),
    ):
        with pytest.raises(ValueError, match=match):
            validate(compose_train(tmp_path, overrides, debug=None))


def test_an_unknown_reward_kind_is_an_error_that_lists_the_known_ones() -> None:
    cfg = RewardConfig(kind="math_verify")
    object.__setattr__(cfg, "kind", "bogus")  # past the schema's own check, as a caller might build it
    with pytest.raises(ValueError, match=r"reward\.kind='bogus'.*math_verify.*arithmetic_steps"):
        make_verifier(cfg)

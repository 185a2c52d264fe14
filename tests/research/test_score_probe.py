"""The self-reward probe: it finds a response feature the score can learn, and runs end to end."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from laser.configs import ArithmeticTaskConfig
from laser.data.arithmetic import arithmetic_dataset
from laser.research.score_probe import (
    Samples,
    main,
    references,
    task_references,
    train_score,
    verdict_on_warm_up_rows,
    verdict_rankings,
)
from laser.rollout.generate import generate

from helpers import add_logit_bias, char_tokenizer, encode_prompts, tiny_model

PROMPTS = [f"{a}+{b}=" for a in range(1, 40, 5) for b in range(2, 40, 9)]  # 40 prompts
K = 8
MARK = 2  # EOS: "correct" responses are the empty ones, 17% of seed 0's samples


def sampled(tok, policy, seed: int) -> Samples:
    """K samples per prompt; "correct" means the response starts with the most common first token
    of seed 0's samples, a rule that tells a prompt's samples apart (not its difficulty)."""
    prompts = [p for p in PROMPTS for _ in range(K)]
    ids, mask = encode_prompts(tok, prompts)
    rollout = generate(
        policy.eval(), ids, mask, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, max_new_tokens=8,
        score=False, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    correct = rollout.response_ids[:, 0] == MARK
    return Samples(rollout, correct, K)


def test_the_score_learns_a_within_prompt_rule_and_the_probe_sees_it() -> None:
    tok = char_tokenizer()
    policy = add_logit_bias(tiny_model(tok), {tok.eos_token_id: 3.0})  # most responses finish
    token_id = tok.convert_tokens_to_ids("<reserved_0>")
    train, held_out = sampled(tok, policy, 0), sampled(tok, policy, 1)
    assert held_out.rollout.finished.float().mean() > 0.5
    assert 0.1 < held_out.correct.float().mean() < 0.9  # both classes within prompts
    history = train_score(policy, train, held_out, token_id, c_ref=-5.0, beta_v=0.5, steps=60, lr=3e-3)
    start, end = history[0], history[-1]
    assert [row["step"] for row in history] == [0, 10, 20, 30, 40, 50, 60]
    assert end["train_mse"] < 0.5 * start["train_mse"]
    assert end["within"] > 0.9 and end["pooled"] > 0.9
    refs = references(policy, held_out)
    # every prompt has the same accuracy in expectation: difficulty alone ranks near chance
    assert abs(refs["difficulty_pooled"] - 0.5) < 0.2
    assert set(refs) == {"difficulty_pooled", "seq_logprob_pooled", "seq_logprob_within"}


def test_command_runs_on_the_debug_config(capsys, tmp_path) -> None:
    argv = ["--prompts", "8", "--eval-prompts", "8", "--steps", "2", "--threads", "1", "debug=fast"]
    out = main([*argv, f"paths.cache_dir={tmp_path}"])
    assert [row["step"] for row in out["history"]] == [0, 1, 2]
    assert all(math.isfinite(row["train_mse"]) for row in out["history"])
    printed = capsys.readouterr().out
    assert "references: difficulty_pooled" in printed and "score AUROC pooled" in printed


def test_verdict_rankings_read_the_log_odds_of_two_tokens_after_eos() -> None:
    tok = char_tokenizer()
    policy = add_logit_bias(tiny_model(tok), {tok.eos_token_id: 3.0})
    held_out = sampled(tok, policy, 1)
    forward, swapped = (verdict_rankings(policy, held_out, tok, v) for v in ("yn", "ny"))
    assert set(forward) == {"verdict_pooled", "verdict_within"}
    assert math.isclose(forward["verdict_pooled"], 1 - swapped["verdict_pooled"], abs_tol=1e-6)
    assert math.isclose(forward["verdict_within"], 1 - swapped["verdict_within"], abs_tol=1e-6)


def test_task_references_read_the_check_and_the_listed_answers_off_the_responses() -> None:
    # two prompts x 2 samples; rows 0 and 2 right, 1 and 3 wrong
    texts = [
        "1+2=3, 3+4=7; 4+2=6, 6+1=7 #### 7",  # right, the check agrees
        "1+2=3, 3+4=8; 4+2=6, 6+1=7 #### 8",  # wrong, the check disagrees
        "5-1=4, 4+1=5; 1-1=0, 0+5=5 #### 5",  # right, agrees
        "5-1=3, 3+1=4; 1-1=0, 0+5=4 #### 4",  # wrong, agrees with its wrong fold
    ]
    prompts = ["9;7:1+2+4="] * 2 + ["5;4:5-1+1="] * 2
    rollout = SimpleNamespace(finished=torch.ones(4, dtype=torch.bool))
    samples = Samples(
        rollout, torch.tensor([True, False, True, False]), 2, texts, prompts, ["7"] * 2 + ["5"] * 2
    )
    refs = task_references(samples, ArithmeticTaskConfig(check="reverse", choices=2))
    assert refs["check_agrees_right"] == 1.0 and refs["check_agrees_wrong"] == 0.5
    # row 1's check is right for its steps (its fold went wrong); row 3's was bent to agree
    assert refs["check_honest_right"] == 1.0 and refs["check_honest_wrong"] == 0.5
    # prompt 1: the oracle ranks right over wrong; prompt 2: a tie
    assert math.isclose(refs["check_oracle_within"], 0.75)
    # as a verdict: both right rows accepted, one wrong row of two rejected; F1 = 2 * 1 * 0.5 / 1.5
    assert math.isclose(refs["check_oracle_f1"], 2 / 3, rel_tol=1e-6)
    assert refs["wrong_answers_listed"] == 0.5  # 8 is not listed, 4 is
    assert task_references(samples, ArithmeticTaskConfig()) == {}


def test_the_verdict_is_also_ranked_on_the_warm_ups_own_rows() -> None:
    tok = char_tokenizer()
    split = arithmetic_dataset(train_size=96, eval_size=4, check="reverse", check_errors=0.25)["train"]
    policy = tiny_model(tok)
    forward, swapped = (verdict_on_warm_up_rows(policy, split, tok, v, n=80) for v in ("yn", "ny"))
    assert set(forward) == {"verdict_warm_up_rows"}
    assert math.isclose(forward["verdict_warm_up_rows"], 1 - swapped["verdict_warm_up_rows"], abs_tol=1e-6)

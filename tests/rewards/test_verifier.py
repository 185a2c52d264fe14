"""Tests for laser.rewards.verifier: answer extraction, matching and 0/1 rewards."""

import pytest
import torch

from laser.rewards.verifier import Verifier, answers_match, extract_answer, last_boxed


def test_last_boxed_handles_nested_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{{a}{b{c}}}") == "{a}{b{c}}"


def test_last_boxed_last_occurrence_wins_and_missing_is_none():
    assert last_boxed(r"\boxed{1} then \boxed{22}.") == "22"
    assert last_boxed("no box here") is None
    assert last_boxed(r"\boxed{unbalanced {") is None
    assert last_boxed(r"\boxed{}") == ""


def test_extract_answer_marker_and_precedence():
    assert extract_answer("12+7=19, 19-30=-11 #### -11") == "-11"
    assert extract_answer("#### 3 and later #### 7") == "7"  # last marker wins
    assert extract_answer("####42") == "42"  # no space needed
    assert extract_answer("#### 5 ####") == "5"  # an empty trailing marker does not count
    assert extract_answer(r"#### 4, so \boxed{ 3 }") == "3"  # a box beats the marker, stripped
    assert extract_answer("the answer is 5") is None
    assert extract_answer("") is None


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("-11", "-11", True),
        ("+5", "5", True),
        ("007", "7", True),
        ("11", "-11", False),
        ("-0", "0", True),
        ("12", "13", False),
    ],
)
def test_answers_match_integers(pred, gold, expected):
    assert answers_match(pred, gold) is expected


def test_answers_match_math_verify_fraction():
    # non-integer answers go through math-verify (slow import; keep these few)
    assert answers_match("0.5", r"\frac{1}{2}")
    assert not answers_match(r"\frac{1}{3}", "0.5")


def test_verifier_rewards():
    responses = [
        "12+7=19, 19-30=-11 #### -11",  # right
        "1+1=2 #### 3",  # wrong
        "I do not know",  # no answer: 0
        r"so \boxed{+8} #### 9",  # box wins: 8 == 8
        "#### 40 #### 41",  # last marker: 41 != 40
    ]
    rewards = Verifier()(responses, ["-11", "2", "3", "8", "40"])
    assert rewards.dtype == torch.float32
    assert rewards.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_verifier_empty_and_length_mismatch():
    assert Verifier()([], []).shape == (0,)
    with pytest.raises(ValueError):
        Verifier()(["#### 1", "#### 2"], ["1"])


class _KillingPool:
    """A pool whose every call times out and kills (replaces) its worker."""

    num_killed = 0

    def map(self, pairs, timeout_s):
        self.num_killed += len(pairs)
        return [None] * len(pairs)


def test_time_outs_and_killed_workers_are_counted_per_call(monkeypatch) -> None:
    pool = _KillingPool()
    pool.num_killed = 5  # killed by earlier calls: not this call's
    monkeypatch.setattr(Verifier, "pool", property(lambda self: pool))
    verifier = Verifier()
    verdicts = verifier.judge(["x^2", "3", None], ["x**2+0", "3", "1"])
    assert verdicts == [False, True, False]  # the time-out is judged wrong; "3" needs no worker
    counts = {k: verifier.last_stats[k] for k in ("math_verify", "timeouts", "killed_workers")}
    assert counts == {"math_verify": 1, "timeouts": 1, "killed_workers": 1}

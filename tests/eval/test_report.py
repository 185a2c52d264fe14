"""laser.eval.report.by_written_check on hand-built samples: where a self-checking task's score errs."""

from __future__ import annotations

import torch

from laser.eval.report import by_written_check
from laser.eval.samples import ScoredSamples


def samples(responses: list[list[str]], correct, finished, scores) -> ScoredSamples:
    p, k = len(responses), len(responses[0])
    return ScoredSamples(
        problems=[f"q{i}" for i in range(p)], gold=["0"] * p, responses=responses,
        answers=[[None] * k for _ in range(p)], correct=torch.tensor(correct),
        finished=torch.tensor(finished), scores=torch.tensor(scores), lengths=torch.ones(p, k),
    )  # fmt: skip


def agrees(text: str) -> bool:
    return text.endswith("=0")


def test_shares_of_wrong_responses_by_their_written_check() -> None:
    # one right response (ignored), four wrong: two whose check agrees (one rejected) and two
    # whose check disagrees (both rejected); an unfinished wrong one does not count
    s = samples(
        [["a=0", "b=0", "c=0"], ["d=1", "e=2", "f=0"]],
        correct=[[True, False, False], [False, False, False]],
        finished=[[True, True, True], [True, True, False]],
        scores=[[0.9, 0.7, 0.2], [0.1, 0.5, 0.9]],
    )
    out = by_written_check(s, agrees, threshold=0.5)
    assert out["check/agrees_wrong"] == 2 / 4
    assert out["self_verify/acc_incorrect_check_agrees"] == 1 / 2  # 0.7 accepted, 0.2 rejected
    assert out["self_verify/acc_incorrect_check_disagrees"] == 1.0  # 0.5 is rejected: not > 0.5


def test_an_empty_group_is_not_applicable() -> None:
    s = samples([["a=1", "b=0"]], correct=[[False, True]], finished=[[True, True]], scores=[[0.1, 0.9]])
    out = by_written_check(s, agrees)
    assert out["check/agrees_wrong"] == 0.0
    assert out["self_verify/acc_incorrect_check_agrees"] is None
    assert out["self_verify/acc_incorrect_check_disagrees"] == 1.0

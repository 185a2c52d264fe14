"""Inference-time scaling (E8): pass@k, majority and weighted voting, best-of-k, resampled curves."""

from __future__ import annotations

import itertools
import math

import torch

from laser.algo.scaling import best_of_k, pass_at_k, picked_correct, scaling_curves, vote


def test_pass_at_k_hand_computed() -> None:
    # n=4: c=0 -> 0; c=1, k=2 -> 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5; c=4 -> 1
    # n=10, c=3, k=2 -> 1 - C(7,2)/C(10,2) = 1 - 21/45
    got = pass_at_k(torch.tensor([4, 4, 4, 10]), torch.tensor([0, 1, 4, 3]), 2)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.5, 1.0, 1 - 21 / 45], dtype=torch.float64))


def test_pass_at_k_matches_brute_force_over_subsets() -> None:
    for n, c, k in [(6, 2, 3), (8, 1, 4), (5, 5, 1), (7, 0, 3)]:
        outcomes = [1] * c + [0] * (n - c)
        subsets = list(itertools.combinations(outcomes, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        assert math.isclose(pass_at_k(torch.tensor([n]), torch.tensor([c]), k).item(), brute)


def test_vote_majority_weighted_and_no_answer() -> None:
    answers = torch.tensor([[1, 2, 2, -1], [3, 3, 1, 1], [-1, -1, -1, -1]])
    weights = torch.tensor([[0.9, 0.1, 0.2, 1.0], [0.1, 0.1, 0.5, 0.6], [1.0, 1.0, 1.0, 1.0]])
    # row 0: majority is answer 2 (two votes) at index 1; weighted: 1 has 0.9 > 2 has 0.3 -> index 0
    # row 1: a 2-2 tie goes to the answer seen first (3, index 0); weighted: 1 has 1.1 > 0.2 -> index 2
    assert vote(answers).tolist() == [1, 0, -1]
    assert vote(answers, weights).tolist() == [0, 2, -1]


def test_best_of_k_ignores_samples_without_answer() -> None:
    scores = torch.tensor([[0.2, 0.9, 0.5], [0.1, 0.1, 0.1]])
    has_answer = torch.tensor([[True, False, True], [False, False, False]])
    assert best_of_k(scores, has_answer).tolist() == [2, -1]
    correct = torch.tensor([[False, True, True], [True, True, True]])
    assert picked_correct(torch.tensor([2, -1]), correct).tolist() == [1.0, 0.0]


def test_scaling_curves_full_budget_and_informative_scores() -> None:
    # one problem, K=4: answers 7 (correct, score 1) once and 5 (wrong, score 0) three times
    answers = torch.tensor([[7, 5, 5, 5]])
    correct = answers == 7
    scores = correct.double()
    curves = scaling_curves(answers, correct, scores, ks=[1, 4], num_resamples=200,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert curves["majority"][4].item() == 0.0  # 5 wins 3 to 1
    assert curves["weighted_majority"][4].item() == 1.0  # 7 carries all the weight
    assert curves["best_of_k"][4].item() == 1.0
    assert curves["pass@k"][4].item() == 1.0 and curves["pass@1"][4].item() == 0.25
    # at k=1 every method is a random single sample: about 1/4 correct over 200 subsets
    for method in ("majority", "weighted_majority", "best_of_k"):
        assert abs(curves[method][1].item() - 0.25) < 0.1


def test_best_of_k_ranks_raw_scores_while_voting_weights_are_clipped() -> None:
    # both samples score above 1: clipped they tie (the first would win), raw the second is higher
    answers = torch.tensor([[5, 7, 5]])
    correct = answers == 7
    scores = torch.tensor([[1.4, 1.8, 1.2]], dtype=torch.float64)
    curves = scaling_curves(answers, correct, scores, ks=[3])
    assert curves["best_of_k"][3].item() == 1.0
    # clipped weights: 5 collects 1 + 1, 7 only 1, so weighted voting picks the wrong answer
    assert curves["weighted_majority"][3].item() == 0.0

"""Tests for laser.algo.confidence: the training-free confidences on hand-computed values, and the
test-time rules that use a confidence (filtered voting, the vote's margin, adaptive stopping)."""

import ast
import math
from pathlib import Path

import pytest
import torch

from laser.algo import confidence
from laser.algo.confidence import (
    adaptive_vote,
    answer_confidence,
    filtered_vote,
    lowest_group_confidence,
    response_mean,
    stop_statistic,
    tail_confidence,
    token_confidence,
    token_self_certainty,
    vote_lead,
    vote_margin,
)

LN2 = math.log(2)
# p = (1/2, 1/4, 1/8, 1/8): log p = -(1, 2, 3, 3) ln 2
LOG_P = -torch.tensor([[1.0, 2.0, 3.0, 3.0]]) * LN2


def test_self_certainty_is_the_kl_from_uniform():
    # KL(U || p) = -ln 4 - mean log p = -2 ln 2 + (9/4) ln 2 = ln 2 / 4
    assert token_self_certainty(LOG_P).item() == pytest.approx(LN2 / 4)
    uniform = torch.full((1, 5), -math.log(5))
    assert token_self_certainty(uniform).item() == pytest.approx(0.0, abs=1e-6)


def test_token_confidence_is_minus_the_mean_top_k_log_prob():
    # top-2 log-probs: -ln 2 and -2 ln 2 -> confidence 1.5 ln 2
    assert token_confidence(LOG_P, 2).item() == pytest.approx(1.5 * LN2)
    # the top-1 confidence is -log of the most likely token's probability
    assert token_confidence(LOG_P, 1).item() == pytest.approx(LN2)
    peaked = torch.log_softmax(torch.tensor([[9.0, 0.0, 0.0, 0.0]]), -1)
    assert token_confidence(peaked, 2) > token_confidence(LOG_P, 2)  # a peaked step is more confident


VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 1.0, 1.0, 9.0, 7.0], [4.0, 8.0, 8.0, 8.0, 8.0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])  # lengths 5, 4, 1


def test_response_mean_ignores_padding():
    # (1+2+3+4+5)/5, (5+1+1+9)/4, 4/1
    assert response_mean(VALUES, MASK).tolist() == pytest.approx([3.0, 4.0, 4.0])
    assert response_mean(VALUES, torch.zeros_like(MASK)).tolist() == [0.0, 0.0, 0.0]


def test_lowest_group_confidence_hand_values():
    # windows of 2: row 0: 1.5, 2.5, 3.5, 4.5 -> 1.5; row 1 (length 4): 3, 1, 5 -> 1 (the padded
    # (9, 7) window is not one of its groups); row 2 is shorter than a window: its mean, 4
    assert lowest_group_confidence(VALUES, MASK, 2).tolist() == pytest.approx([1.5, 1.0, 4.0])
    # a window of 1 is the lowest token; a window longer than every row is the whole mean
    assert lowest_group_confidence(VALUES, MASK, 1).tolist() == pytest.approx([1.0, 1.0, 4.0])
    assert lowest_group_confidence(VALUES, MASK, 9).tolist() == pytest.approx([3.0, 4.0, 4.0])


def test_tail_confidence_hand_values():
    # the last 2 tokens: (4+5)/2, (1+9)/2, and row 2's only token
    assert tail_confidence(VALUES, MASK, 2).tolist() == pytest.approx([4.5, 5.0, 4.0])
    assert tail_confidence(VALUES, MASK, 10).tolist() == pytest.approx([3.0, 4.0, 4.0])


def test_filtered_vote_keeps_the_most_confident_share():
    answers = torch.tensor([[1, 1, 2, 2, 2, -1]])
    conf = torch.tensor([[0.9, 0.8, 0.1, 0.2, 0.3, 5.0]])  # the answerless sample is never kept
    ones = torch.ones(1, 6)
    # keep 1/3: ceil(2) samples, both answer 1 -> sample 0
    assert filtered_vote(answers, conf, ones, 1 / 3).tolist() == [0]
    # keep all: answer 2 has three votes -> its first sample, 2
    assert filtered_vote(answers, conf, ones, 1.0).tolist() == [2]
    # the kept samples (0 and 1) vote with their weights; sample 2 weighs most but is filtered out
    three = torch.tensor([[1, 2, 3]])
    weights = torch.tensor([[0.1, 0.5, 1.0]])
    assert filtered_vote(three, torch.tensor([[0.9, 0.8, 0.1]]), weights, 2 / 3).tolist() == [1]
    assert filtered_vote(torch.full((1, 3), -1), conf[:, :3], ones[:, :3], 1.0).tolist() == [-1]


def test_vote_margin_hand_values():
    answers = torch.tensor([[0, 0, 1, -1], [3, 3, 3, 3], [-1, -1, -1, -1]])
    weights = torch.tensor([[0.5, 0.3, 0.2, 0.9], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    # row 0: answer 0 has 0.8, answer 1 has 0.2 of 1.0 (the answerless 0.9 does not count) -> 0.6
    assert vote_margin(answers, weights).tolist() == pytest.approx([0.6, 1.0, 0.0])
    assert vote_margin(answers[:1], torch.zeros(1, 4)).tolist() == [0.0]  # no weight: no margin


def test_vote_lead_hand_values_grow_with_agreeing_samples():
    answers = torch.tensor([[0, 0, 1, -1], [3, 3, 3, 3], [-1, -1, -1, -1], [2, -1, -1, -1]])
    weights = torch.tensor([[0.5, 0.3, 0.2, 0.9], [0.9, 0.8, 0.7, 0.6], [1.0] * 4, [0.4, 0, 0, 0]])
    # row 0: 0.8 - 0.2; row 1: unanimous, 3.0 - 0 (its margin is 1 whatever the count); row 2: none
    assert vote_lead(answers, weights).tolist() == pytest.approx([0.6, 3.0, 0.0, 0.4])
    assert stop_statistic(answers, weights, "lead").tolist() == pytest.approx([0.6, 3.0, 0.0, 0.4])
    two, four = vote_margin(answers[1:2, :2], weights[1:2, :2]), vote_margin(answers[1:2], weights[1:2])
    assert two.item() == four.item() == 1.0  # the margin cannot tell two agreeing samples from four


def test_stop_statistic_best_is_the_largest_weight_with_an_answer():
    answers = torch.tensor([[0, 1, -1]])
    weights = torch.tensor([[0.2, 0.7, 0.9]])
    assert stop_statistic(answers, weights, "best").tolist() == pytest.approx([0.7])
    with pytest.raises(ValueError, match="rule='worst' is unknown"):
        stop_statistic(answers, weights, "worst")


def test_adaptive_vote_stops_once_sure():
    answers = torch.tensor([[3, 3, 4, 4], [3, 4, 4, 4]])
    ones = torch.ones(2, 4)
    picked, used = adaptive_vote(answers, ones, batch=2, threshold=0.5)
    # row 0: its first two agree (margin 1) -> stop at 2 with answer 3; row 1: 3 vs 4 (margin 0) ->
    # all 4, where answer 4 wins 3 to 1
    assert used.tolist() == [2, 4]
    assert picked.tolist() == [0, 1]
    # no margin passes 1: fixed-K voting; every answer passes 0: one round
    assert adaptive_vote(answers, ones, 2, 1.0)[1].tolist() == [4, 4]
    assert adaptive_vote(answers, ones, 1, 0.0)[1].tolist() == [1, 1]
    # rule best: stop once a sample's weight reaches 0.8
    weights = torch.tensor([[0.1, 0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])
    assert adaptive_vote(answers, weights, 1, 0.8, rule="best")[1].tolist() == [2, 4]


def test_answer_confidence_is_the_mean_probability_of_the_answers_samples():
    answers = torch.tensor([[0, 0, 1], [0, 1, 1]])
    probs = torch.tensor([[0.8, 0.6, 0.1], [0.5, 0.2, 0.4]])
    assert answer_confidence(answers, torch.tensor([0, -1]), probs).tolist() == pytest.approx([0.7, 0.0])
    assert answer_confidence(answers, torch.tensor([2, 1]), probs).tolist() == pytest.approx([0.1, 0.3])


def test_the_module_imports_torch_only():
    source = Path(confidence.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module if node.module.startswith("laser.") else node.module.split(".")[0])
    outside = {m for m in imported if m not in {"__future__", "math", "typing", "torch"}}
    assert all(m.startswith("laser.algo.") for m in outside), outside

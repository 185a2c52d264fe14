"""The confidence registry on a hand-made batch, the calibrators and the comparison's tables on
hand-made samples (each test well under a second)."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("sklearn")  # imported at collection, not inside the first calibrator test

from laser.eval.calibration import cross_fit, estimate_rows, fit_calibrator
from laser.eval.confidence import METHODS, GeneratedBatch, ScoringContext, applicable, recording, score_batch
from laser.eval.confidence_report import adaptive_table, curve_ks, ranking_table, voting_table
from laser.eval.samples import ScoredSamples
from laser.eval.settings import AdaptiveConfig
from laser.rollout.types import Rollout

CTX = ScoringContext(
    top_k=2, group_window=2, tail=1, beta_v=0.5, c_ref=-5.0, written_check=lambda t: t == "a"
)


def hand_batch() -> GeneratedBatch:
    """Two responses: 3 tokens (finished), 2 tokens (truncated)."""
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rollout = Rollout(
        prompt_ids=torch.ones(2, 1, dtype=torch.long), prompt_mask=torch.ones(2, 1, dtype=torch.long),
        response_ids=torch.ones(2, 3, dtype=torch.long), response_mask=mask,
        finished=torch.tensor([True, False]), z_logp=torch.tensor([-3.0, math.nan]),
        logp=torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]]),
        token_self_certainty=torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 0.0]]),
        token_confidence=torch.tensor([[1.0, 2.0, 3.0], [4.0, 6.0, 0.0]]),
    )  # fmt: skip
    return GeneratedBatch(rollout, ["a", "b"])


def test_every_method_on_hand_values():
    scores = {
        name: values.tolist() for name, (values, _) in score_batch(list(METHODS), hand_batch(), CTX).items()
    }
    assert scores["laser"] == pytest.approx([1.0, 0.0])  # 0.5 * (-3 - (-5)); truncated: no score
    assert scores["mean_logprob"] == pytest.approx([-2.0, -0.5])
    assert scores["self_certainty"] == pytest.approx([0.2, 1.5])
    assert scores["deepconf_lowest_group"] == pytest.approx([1.5, 5.0])  # windows of 2: 1.5, 2.5 | 5
    assert scores["deepconf_tail"] == pytest.approx([3.0, 6.0])  # the last token
    assert scores["written_verdict"] == [1.0, 0.0]


def test_vote_weights_are_non_negative():
    assert METHODS["laser"].weight(torch.tensor([1.5, -0.2, 0.4])).tolist() == pytest.approx([1.0, 0.0, 0.4])
    assert METHODS["mean_logprob"].weight(torch.tensor([0.0, -math.log(2)])).tolist() == pytest.approx(
        [1, 0.5]
    )


def test_the_registry_says_what_to_record_and_what_applies():
    assert recording(["laser", "mean_logprob"], 20) == {"self_certainty": False, "confidence_top_k": 0}
    assert recording(["self_certainty", "deepconf_tail"], 20) == {
        "self_certainty": True,
        "confidence_top_k": 20,
    }
    no_check = ScoringContext(top_k=2, group_window=2, tail=1, beta_v=0.5, c_ref=-5.0)
    assert applicable(["laser", "written_verdict"], no_check) == ["laser"]
    assert applicable(["laser", "written_verdict"], CTX) == ["laser", "written_verdict"]


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrators_are_monotone_probabilities(method):
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    correct = torch.tensor([0, 0, 1, 0, 1, 1])
    calibrate = fit_calibrator(scores, correct, method)
    probs = calibrate(torch.tensor([-10.0, 0.0, 2.5, 5.0, 10.0]))
    assert bool((probs[1:] >= probs[:-1]).all()) and bool(((probs >= 0) & (probs <= 1)).all())
    if method == "isotonic":  # the pool-adjacent-violators fit: (0, 0, .5, .5, 1, 1), clipped outside
        assert calibrate(scores).tolist() == pytest.approx([0, 0, 0.5, 0.5, 1, 1])
        assert probs[0].item() == 0.0 and probs[-1].item() == 1.0


def test_a_calibrator_of_one_class_is_its_rate():
    calibrate = fit_calibrator(torch.tensor([0.1, 0.9]), torch.tensor([1, 1]))
    assert calibrate(torch.tensor([[-3.0, 7.0]])).tolist() == [[1.0, 1.0]]


def test_cross_fitting_never_uses_a_problems_own_labels():
    scores = torch.arange(24.0).view(6, 4) % 5
    correct = scores > 2
    finished = torch.ones(6, 4, dtype=torch.bool)
    finished[0, 0] = False
    probs = cross_fit(scores, correct, finished, "isotonic", folds=2, seed=0)
    assert probs[0, 0] == 0  # a truncated response: probability 0
    fold = torch.randperm(6, generator=torch.Generator().manual_seed(0)) % 2
    flipped = correct.clone()
    flipped[fold == 0] = ~flipped[fold == 0]  # the labels of fold 0 change...
    again = cross_fit(scores, flipped, finished, "isotonic", folds=2, seed=0)
    assert torch.equal(again[fold == 0], probs[fold == 0])  # ...its own probabilities do not


def test_an_oracle_probability_predicts_the_true_accuracy():
    correct = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    answers = torch.tensor([[0, 0, 1], [1, 2, 2], [0, 0, 0]])
    rows = estimate_rows(lambda _: correct.float(), correct, answers, torch.ones(3, 3), 50, seed=0)
    by_target = {r["target"]: r for r in rows}
    assert (
        by_target["pass@1"]["predicted"] == pytest.approx(by_target["pass@1"]["true"]) == pytest.approx(5 / 9)
    )
    assert (
        by_target["voted"]["predicted"] == pytest.approx(2 / 3) == pytest.approx(by_target["voted"]["true"])
    )
    for r in rows:
        assert r["predicted_low"] <= r["predicted"] <= r["predicted_high"]
        assert r["true_low"] <= r["true"] <= r["true_high"]


def hand_samples() -> ScoredSamples:
    """2 problems x 3 samples; answer '1' is right for problem 0, '5' for problem 1."""
    answers = [["1", "2", "2"], ["5", "6", None]]
    correct = torch.tensor([[True, False, False], [True, False, False]])
    return ScoredSamples(
        problems=["p0", "p1"], gold=["1", "5"], responses=[["r"] * 3] * 2, answers=answers,
        correct=correct, finished=torch.ones(2, 3, dtype=torch.bool),
        scores=torch.zeros(2, 3), lengths=torch.full((2, 3), 4),
        confidence={"laser": torch.tensor([[0.9, 0.2, 0.3], [0.8, 0.1, 0.9]])},
        confidence_seconds={"laser": 0.006},
    )  # fmt: skip


def test_voting_rules_at_k_equal_to_all_samples():
    table = voting_table(hand_samples(), ["laser"], ks=[3], keeps=[0.1, 0.9], num_resamples=5)
    got = {(r.method, r.rule): r.accuracy for r in table.itertuples()}
    # problem 0: majority '2' (wrong); weighted: '1' 0.9 vs '2' 0.5 (right); best: 0.9 (right);
    # top 10% keeps 1 sample (right), top 90% keeps 3 (as weighted). problem 1: the answerless
    # sample does not vote: '5' 0.8 vs '6' 0.1 (right), majority ties -> the first seen, '5' (right)
    assert got[("majority", "majority")] == 0.5
    for rule in ("weighted_majority", "best_of_k", "filtered_top10", "filtered_top90"):
        assert got[("laser", rule)] == 1.0, rule
    assert curve_ks(32) == [1, 2, 3, 4, 5, 6, 7, 8, 16, 32] and curve_ks(3) == [1, 2, 3]


def test_adaptive_sampling_between_one_batch_and_all_samples():
    cfg = AdaptiveConfig(batch=1, rule="margin", thresholds=[0.0, 1.0], threshold=0.5, orders=5)
    table = adaptive_table(hand_samples(), ["laser"], cfg, orders=5).set_index("threshold")
    # a first sample with an answer has margin 1 > 0: stop; problem 1's answerless one has none
    assert 1.0 <= table.loc[0.0, "mean_samples"] < 1.5
    assert table.loc[1.0, "mean_samples"] == 3.0  # no margin passes 1: all K
    assert table.loc[1.0, "accuracy"] == 1.0  # the weighted vote over all K


def test_ranking_table_metrics_and_costs():
    samples = hand_samples()
    probs = {"laser": samples.confidence["laser"]}
    table = ranking_table(samples, ["laser"], probs, num_bins=10, generation={"score": 0.002})
    row = table.loc["laser"]
    # pooled: right (0.9, 0.8) against wrong (0.2, 0.3, 0.1, 0.9): 0.9 wins 3 and ties 1, 0.8 wins 3
    assert row["auroc/pooled"] == pytest.approx(6.5 / 8)
    assert row["auroc/within"] == pytest.approx((1.0 + 0.5) / 2)  # problem 1: 0.8 vs 0.1 and 0.9
    assert row["cost/generation_ms_per_sample"] == pytest.approx(2.0)
    assert row["cost/score_ms_per_sample"] == pytest.approx(1.0)  # 6 ms over 6 samples
    assert row["ece/raw"] == pytest.approx(row["ece/calibrated"])  # its probabilities are its scores


def test_lead_thresholds_count_typical_samples_and_best_ones_are_quantiles() -> None:
    from laser.eval.confidence_report import stop_value

    weights = torch.tensor([[0.2, 0.4, 0.6, 5.0]])
    finished = torch.tensor([[True, True, True, False]])  # the unfinished 5.0 does not count
    assert stop_value(1.5, weights, finished, "lead") == pytest.approx(1.5 * 0.4)  # median 0.4
    assert stop_value(1.0, weights, finished, "best") == pytest.approx(0.6)
    assert stop_value(0.7, weights, finished, "margin") == 0.7

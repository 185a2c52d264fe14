"""Tests for laser.algo.stats: summarize, and the reduction of micro-batch metrics."""

import math

import pytest
import torch

from laser import metric_names as names
from laser.algo.stats import MicroBatchStats, Reduction, summarize


def test_summarize_masked_hand_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mask = torch.tensor([True, False, True, True])
    out = summarize("q", x, mask)
    # selected [1, 3, 4]: mean 8/3; deviations -5/3, 1/3, 4/3 -> squares 25/9 + 1/9 + 16/9 = 42/9
    # population variance (42/9) / 3 = 14/9 -> std sqrt(14)/3
    assert set(out) == {"q/mean", "q/std", "q/min", "q/max"}
    assert out["q/mean"].item() == pytest.approx(8 / 3)
    assert out["q/std"].item() == pytest.approx(math.sqrt(14) / 3)
    assert out["q/min"].item() == 1.0
    assert out["q/max"].item() == 4.0


def test_summarize_no_mask_uses_all_elements_of_2d_input():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = summarize("a/b", x)
    # mean 2.5; deviations +-1.5, +-0.5 -> variance (2.25 * 2 + 0.25 * 2) / 4 = 1.25
    assert out["a/b/mean"].item() == pytest.approx(2.5)
    assert out["a/b/std"].item() == pytest.approx(math.sqrt(1.25))


def test_summarize_empty_selection_returns_empty_dict():
    assert summarize("q", torch.ones(3), torch.zeros(3, dtype=torch.bool)) == {}
    assert summarize("q", torch.ones(0)) == {}


def test_summarize_single_element_std_is_zero_and_outputs_are_detached_floats():
    x = torch.tensor([5, 7], dtype=torch.int64)
    out = summarize("q", x, torch.tensor([False, True]))
    assert out["q/std"].item() == 0.0
    assert out["q/mean"].item() == 7.0
    y = torch.tensor([1.0, 2.0], requires_grad=True)
    for value in summarize("q", y * 2).values():
        assert not value.requires_grad
        assert value.dtype == torch.float32
        assert value.dim() == 0


def test_average_ranks_share_ties():
    from laser.algo.stats import average_ranks

    ranks = average_ranks(torch.tensor([0.3, 0.1, 0.3, 0.7, 0.3]))
    # sorted: 0.1 (1), 0.3 x3 (2, 3, 4 -> 3), 0.7 (5)
    assert ranks.tolist() == [3.0, 1.0, 3.0, 5.0, 3.0]
    assert ranks.dtype == torch.float64


REDUCTIONS = {"loss": Reduction.SHARE, "frac": Reduction.TOKEN_MEAN, "per_class/mean": Reduction.STEP}


def test_micro_batch_stats_sum_shares_weight_token_means_and_drop_step_stats():
    sums = MicroBatchStats(REDUCTIONS)
    first = {"loss": torch.tensor(0.25), "frac": torch.tensor(0.5), "per_class/mean": torch.tensor(9.0)}
    sums.add(first, 0.25)
    sums.add({"loss": torch.tensor(0.5), "frac": torch.tensor(1.0)}, 0.75)  # a class absent here
    out = sums.result()
    assert set(out) == {"loss", "frac"}
    assert out["loss"].item() == pytest.approx(0.75)
    assert out["frac"].item() == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)


def test_a_metric_without_a_declared_reduction_is_an_error():
    sums = MicroBatchStats(REDUCTIONS)
    with pytest.raises(ValueError, match="'policy/renamed' declares no reduction"):
        sums.add({"loss": torch.tensor(1.0), "policy/renamed": torch.tensor(1.0)}, 1.0)


def test_summarize_gives_the_names_of_the_metric_names_module():
    out = summarize("self_reward/score", torch.tensor([1.0, 2.0]))
    assert tuple(out) == names.summary_names(names.SCORE)

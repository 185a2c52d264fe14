"""Tests for laser.algo.dynamic_sampling: the order in which DAPO's drawn groups fill a batch."""

import pytest
import torch

from laser.algo.advantages import varied_groups
from laser.algo.dynamic_sampling import fill_order, group_rows


def test_varied_groups_come_first_in_draw_order():
    varied = torch.tensor([False, True, False, True, True])
    assert fill_order(varied, 2).tolist() == [1, 3, 4, 0, 2]  # batch: groups 1 and 3


def test_too_few_varied_groups_are_topped_up_with_dropped_ones():
    # after the cap on extra rounds: one varied group, the first dropped group stands in
    varied = torch.tensor([False, True, False])
    assert fill_order(varied, 2)[:2].tolist() == [1, 0]


def test_the_filter_and_the_order_select_a_batch_of_varied_groups():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # groups of 2: F, T, F, T
    order = fill_order(varied_groups(rewards, 2), 2)
    rows = group_rows(order[:2], 2)
    assert rows.tolist() == [2, 3, 6, 7]
    assert rewards[rows].tolist() == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("num_groups", [0, 4])
def test_fill_order_needs_a_batch_within_the_drawn_groups(num_groups):
    with pytest.raises(ValueError, match="num_groups"):
        fill_order(torch.tensor([True, False, True]), num_groups)


def test_group_rows_lists_each_groups_rows():
    assert group_rows(torch.tensor([2, 0]), 3).tolist() == [6, 7, 8, 0, 1, 2]

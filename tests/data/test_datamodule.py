"""Tests for laser.data.datamodule: the epoch order of the training prompts, resumed mid-epoch."""

import pytest
import torch
from torch.utils.data import DataLoader

from laser.data.datamodule import EpochOrder


@pytest.mark.parametrize(("rows", "batch_size", "seed"), [(64, 2, 0), (10, 3, 5), (7, 7, 1)])
def test_epoch_order_is_the_shuffling_loaders_order_epoch_after_epoch(rows, batch_size, seed):
    data = list(range(rows))
    generator = torch.Generator().manual_seed(seed)
    shuffled = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
    ordered = DataLoader(data, batch_size=batch_size, drop_last=True, sampler=EpochOrder(rows, seed))
    expected = [[b.tolist() for b in shuffled] for _ in range(3)]
    assert [[b.tolist() for b in ordered] for _ in range(3)] == expected
    # resumed within epoch 1 after 1 batch: the rest of that epoch, then epoch 2 as before
    order = EpochOrder(rows, seed)
    order.set_epoch(1)
    order.resume_at(1, batch_size)
    resumed = DataLoader(data, batch_size=batch_size, drop_last=True, sampler=order)
    assert [[b.tolist() for b in resumed] for _ in range(2)] == [expected[1][1:], expected[2]]

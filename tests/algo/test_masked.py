"""Tests for laser.algo.masked: masked reductions and micro-batch-safe loss aggregation."""

import pytest
import torch

from laser.algo.masked import aggregate_loss, masked_mean, masked_sum

MODES = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[True, True, False], [True, False, False]])


def test_masked_sum_and_mean_hand_values():
    assert masked_sum(LOSS, MASK).item() == 7.0  # 1 + 2 + 4
    assert masked_sum(LOSS, MASK, dim=-1).tolist() == [3.0, 4.0]
    assert masked_mean(LOSS, MASK).item() == pytest.approx(7 / 3)
    assert masked_mean(LOSS, MASK, dim=-1).tolist() == [1.5, 4.0]


def test_masked_mean_of_nothing_is_zero_and_padding_nan_does_not_leak():
    x = torch.tensor([[float("nan"), 2.0], [float("inf"), float("nan")]])
    mask = torch.tensor([[False, True], [False, False]])
    assert masked_sum(x, mask).item() == 2.0
    assert masked_mean(x, mask, dim=-1).tolist() == [2.0, 0.0]
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


def test_aggregate_loss_hand_values():
    # token_mean: (1 + 2 + 4) / 3 tokens
    assert aggregate_loss(LOSS, MASK, "token_mean").item() == pytest.approx(7 / 3)
    # seq_mean_token_mean: (mean(1, 2) + mean(4)) / 2 = (1.5 + 4) / 2
    assert aggregate_loss(LOSS, MASK, "seq_mean_token_mean").item() == pytest.approx(2.75)
    # seq_mean_token_sum: ((1 + 2) + 4) / 2
    assert aggregate_loss(LOSS, MASK, "seq_mean_token_sum").item() == pytest.approx(3.5)


def test_aggregate_loss_explicit_normalisers():
    assert aggregate_loss(LOSS, MASK, "token_mean", num_tokens=14).item() == pytest.approx(0.5)
    # (1.5 + 4) / 11
    got = aggregate_loss(LOSS, MASK, "seq_mean_token_mean", num_seqs=torch.tensor(11.0))
    assert got.item() == pytest.approx(0.5)


@pytest.mark.parametrize("mode", MODES)
def test_rows_without_valid_tokens_contribute_nothing(mode):
    loss = torch.cat([LOSS, torch.tensor([[7.0, 8.0, 9.0]])])
    mask = torch.cat([MASK, torch.zeros(1, 3, dtype=torch.bool)])
    assert aggregate_loss(loss, mask, mode).item() == pytest.approx(aggregate_loss(LOSS, MASK, mode).item())


@pytest.mark.parametrize("mode", MODES)
def test_padding_columns_do_not_change_the_loss(mode):
    padded = torch.cat([LOSS, torch.full((2, 4), float("nan"))], dim=1)
    mask = torch.cat([MASK, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    assert torch.equal(aggregate_loss(padded, mask, mode), aggregate_loss(LOSS, MASK, mode))


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(6, 5, generator=gen, requires_grad=True)
    lengths = torch.tensor([5, 1, 3, 0, 2, 4])  # ragged, one empty row
    mask = torch.arange(5)[None, :] < lengths[:, None]  # (6, 5)
    return theta, mask


@pytest.mark.parametrize("mode", MODES)
def test_micro_batches_with_step_normalisers_match_full_batch(mode):
    theta, mask = _batch()
    full = aggregate_loss(theta**2, mask, mode)
    (full_grad,) = torch.autograd.grad(full, theta)

    num_tokens = mask.sum()
    num_seqs = mask.any(-1).sum()
    parts = [
        aggregate_loss(theta[sl] ** 2, mask[sl], mode, num_tokens=num_tokens, num_seqs=num_seqs)
        for sl in (slice(0, 2), slice(2, 3), slice(3, 6))
    ]
    split = torch.stack(parts).sum()
    (split_grad,) = torch.autograd.grad(split, theta)
    torch.testing.assert_close(split, full)
    torch.testing.assert_close(split_grad, full_grad)

    # Without the step-level normalisers the sum differs (the test above can fail).
    local = sum(aggregate_loss(theta[sl] ** 2, mask[sl], mode) for sl in (slice(0, 2), slice(2, 6)))
    assert not torch.allclose(local, full)


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="seq_sum"):
        aggregate_loss(LOSS, MASK, "seq_sum")


def test_dr_grpo_constant_normaliser_hand_values():
    # sequence sums (1 + 2, 4) over 2 sequences and a constant length 4: 7 / (2 * 4)
    assert aggregate_loss(LOSS, MASK, "seq_mean_token_sum_norm", norm_length=4).item() == pytest.approx(0.875)
    # step-level normaliser: 7 / (5 * 2)
    got = aggregate_loss(LOSS, MASK, "seq_mean_token_sum_norm", num_seqs=5, norm_length=2)
    assert got.item() == pytest.approx(0.7)


def test_dr_grpo_weights_every_token_alike_whatever_its_response_length():
    theta = torch.ones(2, 3, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    loss = aggregate_loss(theta, mask, "seq_mean_token_sum_norm", norm_length=3)
    (grad,) = torch.autograd.grad(loss, theta)
    # d/dtheta of sum / (2 * 3): 1/6 on every valid token; seq_mean_token_mean would give 1/6 and 1/2
    torch.testing.assert_close(grad, mask.float() / 6)


@pytest.mark.parametrize("norm_length", [None, 0.0])
def test_dr_grpo_needs_a_positive_constant(norm_length):
    with pytest.raises(ValueError, match="norm_length"):
        aggregate_loss(LOSS, MASK, "seq_mean_token_sum_norm", norm_length=norm_length)

"""Tests for laser.algo.overlong: DAPO's soft overlong punishment and truncated-response masking."""

import pytest
import torch

from laser.algo.overlong import mask_truncated, overlong_penalty


def test_soft_overlong_punishment_hand_values():
    # L_max 20, buffer 5: free up to 15 tokens, then -(len - 15) / 5, reaching -1 at 20
    lengths = torch.tensor([10, 15, 16, 18, 20])
    torch.testing.assert_close(
        overlong_penalty(lengths, max_length=20, buffer_length=5),
        torch.tensor([0.0, 0.0, -0.2, -0.6, -1.0]),
    )
    # the penalty factor scales it (verl's penalty_factor)
    torch.testing.assert_close(
        overlong_penalty(lengths, 20, 5, penalty_factor=0.5), torch.tensor([0.0, 0.0, -0.1, -0.3, -0.5])
    )


def test_a_fractional_buffer_works_in_tokens():
    # 20% of 48 tokens = 9.6: free up to 38.4 tokens
    got = overlong_penalty(torch.tensor([38, 43, 48]), 48, 9.6)
    torch.testing.assert_close(got, torch.tensor([0.0, -4.6 / 9.6, -1.0]))


@pytest.mark.parametrize(("buffer_length", "factor"), [(0, 1.0), (21, 1.0), (5, 0.0)])
def test_overlong_penalty_rejects_bad_settings(buffer_length, factor):
    with pytest.raises(ValueError, match=r"buffer_length|penalty_factor"):
        overlong_penalty(torch.tensor([3]), 20, buffer_length, factor)


def test_mask_truncated_drops_whole_rows_of_truncated_responses():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    got = mask_truncated(mask, torch.tensor([True, False]))
    assert got.tolist() == [[True, True, False], [False, False, False]]

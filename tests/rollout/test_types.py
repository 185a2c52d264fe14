"""Tests for laser.rollout.types: `Rollout` batches are concatenated (re-padded), split and indexed."""

import torch

from laser.rollout.types import Rollout

from helpers import make_rollout


def test_rollout_cat_repads_left_prompts_and_right_responses():
    a, b = make_rollout(1, 1, 3, 0), make_rollout(2, 3, 1, 1)
    c = Rollout.cat([a, b], pad_id=0)
    assert c.prompt_ids.tolist() == [[0, 0, 10], [11, 11, 11], [12, 12, 12]]
    assert c.prompt_mask.tolist() == [[0, 0, 1], [1, 1, 1], [1, 1, 1]]
    assert c.response_ids.tolist() == [[20, 20, 20], [21, 0, 0], [22, 0, 0]]
    assert c.response_mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert c.finished.tolist() == [True, False, True]
    assert c.z_logp.tolist() == [0.0, -1.0, -2.0]
    assert c.lengths.tolist() == [3, 1, 1]
    assert Rollout.cat([a, make_rollout(1, 1, 1, 5, z=False)], pad_id=0).z_logp is None


def test_rollout_rows_and_split():
    ro = make_rollout(5, 2, 3, 0)
    parts = ro.split(2)
    assert [len(p) for p in parts] == [2, 2, 1]
    assert parts[1].prompt_ids[:, 0].tolist() == [12, 13]
    assert parts[2].z_logp.tolist() == [-4.0]
    back = Rollout.cat(parts, pad_id=0)
    for name in (
        "prompt_ids",
        "prompt_mask",
        "response_ids",
        "response_mask",
        "finished",
        "z_logp",
    ):
        assert torch.equal(getattr(back, name), getattr(ro, name))
    picked = ro.rows(torch.tensor([4, 0]))
    assert picked.response_ids[:, 0].tolist() == [24, 20]
    assert picked.finished.tolist() == [True, True]
    no_z = make_rollout(3, 1, 1, 0, z=False).rows(slice(1, 3))
    assert len(no_z) == 2 and no_z.z_logp is None


def test_rollout_cat_pads_the_token_statistics():
    a, b = make_rollout(1, 1, 3, 0), make_rollout(1, 1, 1, 1)
    a.token_confidence, b.token_confidence = torch.ones(1, 3), torch.full((1, 1), 2.0)
    c = Rollout.cat([a, b], pad_id=0)
    assert c.token_confidence.tolist() == [[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]
    assert c.token_self_certainty is None
    assert Rollout.cat([a, make_rollout(1, 1, 1, 1)], pad_id=0).token_confidence is None
    assert c.rows(slice(1, 2)).token_confidence.tolist() == [[2.0, 0.0, 0.0]]

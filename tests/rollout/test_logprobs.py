"""Tests for laser.rollout.logprobs: `sequence_logprobs` by hand on the scripted model, and against a
manual forward pass, alone and padded in a batch."""

import math

import pytest
import torch

from laser.rollout.distribution import SamplingDistribution
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.types import Rollout

from helpers import (
    BOS,
    EOS,
    PAD,
    Z_AFTER_EOS,
    Z,
    bigram,
    char_tokenizer,
    encode_prompts,
    make_rollout,
    peaked_model,
    self_reward_id,
)


def test_sequence_logprobs_scripted_hand_values():
    table = bigram().table
    ro = Rollout(
        prompt_ids=torch.tensor([[PAD, BOS, 4], [BOS, 7, 6]]),
        prompt_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
        response_ids=torch.tensor([[5, EOS, PAD], [7, 6, 7]]),
        response_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]),
        finished=torch.tensor([True, False]),
    )
    for temperature in (1.0, 2.0):
        out = sequence_logprobs(bigram(), ro, Z, SamplingDistribution(temperature), with_entropy=True)
        ls = torch.log_softmax(table / temperature, -1)
        expected = [[ls[4, 5], ls[5, EOS], 0.0], [ls[6, 7], ls[7, 6], ls[6, 7]]]
        torch.testing.assert_close(out.logp, torch.tensor(expected))
        # z is read after EOS at temperature 1, and is 0 for the truncated row
        torch.testing.assert_close(out.z_logp, torch.tensor([Z_AFTER_EOS, 0.0]))
        ent = -(ls.exp() * ls).sum(-1)
        torch.testing.assert_close(out.entropy[1], ent[[6, 7, 6]])
    assert sequence_logprobs(bigram(), ro, None).z_logp.tolist() == [0.0, 0.0]
    assert sequence_logprobs(bigram(), ro, Z).entropy is None
    # the SFT loss's second verdict token, from the same distribution after EOS: logit 0 there
    both = sequence_logprobs(bigram(), ro, Z, incorrect_id=6)
    torch.testing.assert_close(both.z_logp, torch.tensor([Z_AFTER_EOS, 0.0]))
    torch.testing.assert_close(both.incorrect_logp, torch.tensor([-math.log(7 + math.exp(1.5)), 0.0]))
    assert sequence_logprobs(bigram(), ro, Z).incorrect_logp is None


def test_sequence_logprobs_matches_manual_forward_and_padding():
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = peaked_model(tok, eos_bias=0.0, scale=5.0)
    prompt, _ = encode_prompts(tok, ["12+3="])
    response = torch.tensor([[*tok.encode("15 #", add_special_tokens=False), tok.eos_token_id]])
    p, r = prompt.shape[1], response.shape[1]
    single = Rollout(
        prompt_ids=prompt,
        prompt_mask=torch.ones_like(prompt),
        response_ids=response,
        response_mask=torch.ones_like(response),
        finished=torch.tensor([True]),
    )
    with torch.no_grad():
        logits = model(input_ids=torch.cat([prompt, response], -1)).logits[0]  # (P + R, V)
        out = sequence_logprobs(model, single, z)
        hot = sequence_logprobs(model, single, z, SamplingDistribution(2.0))
    for t in range(r):
        assert out.logp[0, t].item() == pytest.approx(
            torch.log_softmax(logits[p - 1 + t], -1)[response[0, t]].item(), abs=1e-5
        )
        assert hot.logp[0, t].item() == pytest.approx(
            torch.log_softmax(logits[p - 1 + t] / 2, -1)[response[0, t]].item(), abs=1e-5
        )
    z_manual = torch.log_softmax(logits[p + r - 1], -1)[z].item()
    assert out.z_logp.item() == pytest.approx(z_manual, abs=1e-5)
    assert hot.z_logp.item() == pytest.approx(z_manual, abs=1e-5)  # z is read at temperature 1
    assert not torch.allclose(out.logp, hot.logp, atol=1e-3)

    # the same row left-padded, beside a longer row, with padding after its EOS: same values, and
    # exactly 0 on masked response positions
    other_prompt, _ = encode_prompts(tok, ["40-39+1="])
    width = other_prompt.shape[1]
    pad = tok.pad_token_id
    batch = Rollout(
        prompt_ids=torch.cat([torch.full((1, width - p), pad), prompt], -1).expand(1, -1),
        prompt_mask=torch.cat([torch.zeros(1, width - p), torch.ones(1, p)], -1).long(),
        response_ids=torch.cat([response, torch.full((1, 2), pad)], -1),
        response_mask=torch.cat([torch.ones(1, r), torch.zeros(1, 2)], -1).long(),
        finished=torch.tensor([True]),
    )
    batch = Rollout.cat([batch, make_rollout(1, width, r + 2, 30)], pad_id=pad)
    with torch.no_grad():
        padded = sequence_logprobs(model, batch, z)
    torch.testing.assert_close(padded.logp[0, :r], out.logp[0], atol=1e-4, rtol=0)
    assert padded.logp[0, r:].tolist() == [0.0, 0.0]
    assert padded.z_logp[0].item() == pytest.approx(out.z_logp.item(), abs=1e-4)
